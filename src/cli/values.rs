//! Arguments parsed from the command line by a parameter's type, and results shown.

use anyhow::{Context as _, bail};
use wasmtime::component::{Type, Val};

/// Parses one argument per parameter by the parameter's type.
pub(crate) fn parse_args(params: &[Type], args: &[String]) -> anyhow::Result<Vec<Val>> {
    if params.len() != args.len() {
        bail!(
            "expected {} argument(s) ({}), got {}",
            params.len(),
            describe(params),
            args.len()
        );
    }
    params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (ty, arg))| parse_val(ty, arg).with_context(|| format!("argument {}", i + 1)))
        .collect()
}

fn describe(params: &[Type]) -> String {
    params
        .iter()
        .map(|t| type_name(t).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(ty: &Type) -> &'static str {
    match ty {
        Type::Bool => "bool",
        Type::S8 => "s8",
        Type::U8 => "u8",
        Type::S16 => "s16",
        Type::U16 => "u16",
        Type::S32 => "s32",
        Type::U32 => "u32",
        Type::S64 => "s64",
        Type::U64 => "u64",
        Type::Float32 => "f32",
        Type::Float64 => "f64",
        Type::Char => "char",
        Type::String => "string",
        _ => "a compound type",
    }
}

fn parse_val(ty: &Type, s: &str) -> anyhow::Result<Val> {
    let bad = |e: &dyn std::fmt::Display| anyhow::anyhow!("`{s}` is not a {}: {e}", type_name(ty));
    Ok(match ty {
        Type::Bool => Val::Bool(s.parse().map_err(|e| bad(&e))?),
        Type::S8 => Val::S8(s.parse().map_err(|e| bad(&e))?),
        Type::U8 => Val::U8(s.parse().map_err(|e| bad(&e))?),
        Type::S16 => Val::S16(s.parse().map_err(|e| bad(&e))?),
        Type::U16 => Val::U16(s.parse().map_err(|e| bad(&e))?),
        Type::S32 => Val::S32(s.parse().map_err(|e| bad(&e))?),
        Type::U32 => Val::U32(s.parse().map_err(|e| bad(&e))?),
        Type::S64 => Val::S64(s.parse().map_err(|e| bad(&e))?),
        Type::U64 => Val::U64(s.parse().map_err(|e| bad(&e))?),
        Type::Float32 => Val::Float32(s.parse().map_err(|e| bad(&e))?),
        Type::Float64 => Val::Float64(s.parse().map_err(|e| bad(&e))?),
        Type::Char => Val::Char(s.parse().map_err(|e| bad(&e))?),
        Type::String => Val::String(s.to_string()),
        other => bail!("parameters of type {other:?} cannot be given on the command line"),
    })
}

pub(crate) fn format_vals(vals: &[Val]) -> String {
    match vals {
        [] => "()".into(),
        [one] => format_val(one),
        many => format!("({})", many.iter().map(format_val).collect::<Vec<_>>().join(", ")),
    }
}

/// Shows a value; long lists are summarised.
fn format_val(val: &Val) -> String {
    match val {
        Val::String(s) => format!("{s:?}"),
        Val::List(items) if items.len() > 16 => {
            let bytes = items.iter().all(|v| matches!(v, Val::U8(_)));
            if bytes {
                format!("<{} bytes>", items.len())
            } else {
                format!("<list of {} items>", items.len())
            }
        }
        Val::List(items) => format!(
            "[{}]",
            items.iter().map(format_val).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}
