//! Who may connect: the host's NATS credentials and TLS, each against a real
//! `nats-server` started with that authorization (and a CA made here).
//!
//! For every mode: two hosts configured alike connect, and a call from one to a component
//! served by the other goes over NATS; a wrong credential makes `Dispatcher::new` fail
//! with a clear message; and the secret appears neither in that message nor in `Debug`
//! of the config or the dispatcher.
#![cfg(feature = "host")]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt as _;
use nkeys::KeyPair;
use wrpc_ring::host::{CallContext, Dispatcher, HostConfig, NatsConfig, NatsTlsConfig};
use wrpc_transport::{InvokeExt as _, ServeExt as _};

use common::nats::{NatsServer, dead_port};
use common::tls::Pki;

const ECHO: &str = "test:echo/echo@0.1.0";
const NO_PATHS: [Box<[Option<usize>]>; 0] = [];
const NO_RESULT_PATHS: &[&[Option<usize>]] = &[];

/// The most any step of a test may take; a hang fails with the step's name.
const STEP: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

/// A folder for one test's server config, certificates and secrets.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("cannot create a temporary folder"))
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Starts a `nats-server` with `config` (its text; paths in it are absolute).
    fn server(&self, config: &str) -> NatsServer {
        NatsServer::start_with_config(&self.write("nats-server.conf", config))
    }
}

/// A host config for `server` with `nats` as its `[nats]` section (the url filled in).
fn host_config(server: &NatsServer, nats: NatsConfig) -> HostConfig {
    HostConfig {
        nats: NatsConfig {
            url: Some(server.url()),
            ..nats
        },
        ..HostConfig::default()
    }
}

/// Two hosts with `config`: the second serves `echo`, the first calls it over NATS.
/// Returns the reply.
async fn call_between_two_hosts(config: &HostConfig) -> String {
    let callee = within("start the callee host", Dispatcher::new(config))
        .await
        .expect("the callee host failed to start");
    let caller = within("start the caller host", Dispatcher::new(config))
        .await
        .expect("the caller host failed to start");
    callee.add_component("there");
    let servers = within("set up the callee's servers", callee.servers("there"))
        .await
        .unwrap();
    assert_eq!(servers.len(), 2, "expected the local and the NATS server");
    for server in servers {
        let calls = within(
            "serve echo",
            server.serve_values::<(String,), (String,)>(ECHO, "echo", NO_PATHS),
        )
        .await
        .unwrap();
        tokio::spawn(calls.for_each_concurrent(None, |call| async move {
            let (_headers, (input,), _io, respond) = call.unwrap();
            respond((format!("there got {input}"),)).await.unwrap();
        }));
    }
    caller.link("caller", ECHO, "default", "there");
    let (reply,) = within(
        "the call over NATS",
        caller.invoke_values_blocking::<_, _, (String,)>(
            CallContext::new("caller"),
            ECHO,
            "echo",
            ("hi".to_string(),),
            NO_RESULT_PATHS,
        ),
    )
    .await
    .expect("the call over NATS failed");
    let metrics = caller.metrics();
    let nats = metrics.transport(wrpc_ring::host::TransportKind::Nats);
    assert_eq!((nats.calls, nats.errors), (1, 0), "the call did not go over NATS");
    reply
}

/// `Dispatcher::new(config)` must fail; returns the message (with its causes).
async fn start_fails(config: &HostConfig) -> String {
    match within("start a host with a wrong credential", Dispatcher::new(config)).await {
        Ok(host) => panic!("the host started with a wrong credential: {host:?}"),
        Err(err) => format!("{err:#}\n{err:?}"),
    }
}

/// `secrets` appear nowhere in `texts`.
#[track_caller]
fn assert_hidden(secrets: &[&str], texts: &[&str]) {
    for secret in secrets {
        for text in texts {
            assert!(
                !text.contains(secret),
                "the secret `{secret}` appears in:\n{text}"
            );
        }
    }
}

/// A quoted string for a nats-server config file.
fn quoted(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_a_file() {
    let scratch = Scratch::new();
    let token = "t0ken-for-the-lattice-5b1f";
    let server = scratch.server(&format!("authorization {{ token: {token:?} }}"));

    let good = host_config(
        &server,
        NatsConfig {
            token_file: Some(scratch.write("token", &format!("{token}\n"))),
            ..NatsConfig::default()
        },
    );
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    let wrong_token = "not-the-t0ken-77c2";
    let bad = host_config(
        &server,
        NatsConfig {
            token_file: Some(scratch.write("wrong-token", wrong_token)),
            ..NatsConfig::default()
        },
    );
    let err = start_fails(&bad).await;
    assert!(
        err.contains("rejected this host's credentials")
            && err.contains("nats.token_file")
            && err.contains("authorization violation"),
        "{err}"
    );
    assert_hidden(
        &[token, wrong_token],
        &[&err, &format!("{good:?}"), &format!("{bad:?}")],
    );

    // No credentials at all against a server that wants them: the same clear failure.
    let err = start_fails(&host_config(&server, NatsConfig::default())).await;
    assert!(err.contains("no credentials configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_from_a_file() {
    let scratch = Scratch::new();
    let password = "pa55word-of-host-a-91d0";
    let server = scratch.server(&format!(
        "authorization {{ users = [ {{ user: \"host-a\", password: {password:?} }} ] }}"
    ));
    let with_password = |file: &str, contents: &str| {
        host_config(
            &server,
            NatsConfig {
                user: Some("host-a".into()),
                password_file: Some(scratch.write(file, contents)),
                ..NatsConfig::default()
            },
        )
    };
    let good = with_password("password", password);
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    let wrong = "pa55word-of-someone-else";
    let bad = with_password("wrong-password", wrong);
    let err = start_fails(&bad).await;
    assert!(
        err.contains("rejected this host's credentials")
            && err.contains("user `host-a`")
            && err.contains("nats.password_file"),
        "{err}"
    );
    assert_hidden(
        &[password, wrong],
        &[&err, &format!("{good:?}"), &format!("{bad:?}")],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_seed_from_a_file() {
    let scratch = Scratch::new();
    let user = KeyPair::new_user();
    let seed = user.seed().unwrap();
    let server = scratch.server(&format!(
        "authorization {{ users = [ {{ nkey: {:?} }} ] }}",
        user.public_key()
    ));
    let with_seed = |file: &str, seed: &str| {
        host_config(
            &server,
            NatsConfig {
                nkey_seed_file: Some(scratch.write(file, seed)),
                ..NatsConfig::default()
            },
        )
    };
    let good = with_seed("seed", &seed);
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    // A valid seed of a user the server does not know.
    let stranger = KeyPair::new_user().seed().unwrap();
    let bad = with_seed("stranger-seed", &stranger);
    let err = start_fails(&bad).await;
    assert!(
        err.contains("rejected this host's credentials") && err.contains("nats.nkey_seed_file"),
        "{err}"
    );
    // Not a seed at all: the nonce cannot be signed.
    let garbage = "SUNOTASEEDATALL0123456789";
    let err2 = start_fails(&with_seed("garbage-seed", garbage)).await;
    assert!(
        err2.contains("not a valid user nkey seed") && err2.contains("nats.nkey_seed_file"),
        "{err2}"
    );
    assert_hidden(
        &[&seed, &stranger, garbage],
        &[&err, &err2, &format!("{good:?}"), &format!("{bad:?}")],
    );
}

/// A JWT signed by `issuer`, as nats-server reads them (`ed25519-nkey`).
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "jti": format!("{subject}-{now}"),
        "iat": now,
        "iss": issuer.public_key(),
        "sub": subject,
        "name": name,
        "nats": nats,
    });
    let claims = b64.encode(claims.to_string());
    let signature = issuer.sign(format!("{header}.{claims}").as_bytes()).unwrap();
    format!("{header}.{claims}.{}", b64.encode(signature))
}

fn credentials_file(user_jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_credentials_file_in_operator_mode() {
    let scratch = Scratch::new();
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let user = KeyPair::new_user();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "test-operator",
        serde_json::json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "test-account",
        serde_json::json!({
            "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                       "wildcards": true, "conn": -1, "leaf": -1},
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account", "version": 2,
        }),
    );
    let user_claims = serde_json::json!({
        "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2,
    });
    let user_jwt = jwt(&account, &user.public_key(), "host", user_claims.clone());
    let server = scratch.server(&format!(
        "operator: {operator_jwt:?}\nresolver: MEMORY\nresolver_preload: {{ {}: {account_jwt:?} }}\n",
        account.public_key()
    ));
    let with_creds = |file: &str, contents: &str| {
        host_config(
            &server,
            NatsConfig {
                credentials_file: Some(scratch.write(file, contents)),
                ..NatsConfig::default()
            },
        )
    };
    let seed = user.seed().unwrap();
    let good = with_creds("host.creds", &credentials_file(&user_jwt, &seed));
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    // The right JWT with another user's seed: the nonce signature does not match.
    let wrong_seed = KeyPair::new_user().seed().unwrap();
    let bad = with_creds("wrong-seed.creds", &credentials_file(&user_jwt, &wrong_seed));
    let err = start_fails(&bad).await;
    assert!(
        err.contains("rejected this host's credentials") && err.contains("nats.credentials_file"),
        "{err}"
    );
    // A user of an account the operator never signed.
    let rogue = KeyPair::new_account();
    let rogue_user = KeyPair::new_user();
    let rogue_jwt = jwt(&rogue, &rogue_user.public_key(), "rogue", user_claims);
    let rogue_seed = rogue_user.seed().unwrap();
    let err2 = start_fails(&with_creds(
        "rogue.creds",
        &credentials_file(&rogue_jwt, &rogue_seed),
    ))
    .await;
    assert!(err2.contains("rejected this host's credentials"), "{err2}");
    // A file that is no credentials file fails before any connection.
    let err3 = start_fails(&with_creds("not.creds", "hello")).await;
    assert!(err3.contains("is not a NATS credentials file"), "{err3}");
    assert_hidden(
        &[&seed, &wrong_seed, &rogue_seed],
        &[&err, &err2, &err3, &format!("{good:?}"), &format!("{bad:?}")],
    );
}

/// The base64 body of a PEM key: what must never be printed.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// A server with TLS from a fresh CA (`verify`: client certificates required), plus
/// `extra` config; returns it, the CA's file and the CA.
fn tls_server(scratch: &Scratch, verify: bool, extra: &str) -> (NatsServer, PathBuf, Pki) {
    let pki = Pki::new("wrpc-ring test CA");
    let (cert, key) = pki.issue(&["127.0.0.1", "localhost"]);
    let ca_file = scratch.write("ca.pem", &pki.ca_pem);
    let config = format!(
        "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: {verify}\n  timeout: 5\n}}\n{extra}",
        quoted(&scratch.write("server.pem", &cert)),
        quoted(&scratch.write("server-key.pem", &key)),
        quoted(&ca_file),
    );
    (scratch.server(&config), ca_file, pki)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let scratch = Scratch::new();
    let (server, ca_file, _pki) = tls_server(&scratch, false, "");
    let tls = |ca_file: Option<PathBuf>| NatsConfig {
        tls: Some(NatsTlsConfig {
            ca_file,
            ..NatsTlsConfig::default()
        }),
        ..NatsConfig::default()
    };
    let good = host_config(&server, tls(Some(ca_file)));
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    // Without the CA the server's certificate is not trusted.
    let err = start_fails(&host_config(&server, NatsConfig::default())).await;
    assert!(
        err.contains("TLS with NATS server") && err.contains("UnknownIssuer"),
        "{err}"
    );
    let err = start_fails(&host_config(&server, tls(None))).await;
    assert!(
        err.contains("UnknownIssuer") && err.contains("nats.tls.ca_file"),
        "{err}"
    );
    // Another CA's certificate is not trusted either.
    let other = scratch.write("other-ca.pem", &Pki::new("another CA").ca_pem);
    let err = start_fails(&host_config(&server, tls(Some(other)))).await;
    assert!(err.contains("UnknownIssuer"), "{err}");
    // A CA file that is missing, or not PEM, fails before any connection, naming it.
    let err = start_fails(&host_config(
        &server,
        tls(Some(scratch.0.path().join("missing.pem"))),
    ))
    .await;
    assert!(
        err.contains("cannot read `nats.tls.ca_file`") && err.contains("missing.pem"),
        "{err}"
    );
    let err = start_fails(&host_config(
        &server,
        tls(Some(scratch.write("junk.pem", "junk"))),
    ))
    .await;
    assert!(err.contains("is not a PEM file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_refuses_a_server_without_tls() {
    let scratch = Scratch::new();
    let token = "t0ken-never-sent-in-clear";
    let server = scratch.server(&format!("authorization {{ token: {token:?} }}"));
    let ca = scratch.write("ca.pem", &Pki::new("unused CA").ca_pem);
    let config = host_config(
        &server,
        NatsConfig {
            token_file: Some(scratch.write("token", token)),
            tls: Some(NatsTlsConfig {
                ca_file: Some(ca),
                ..NatsTlsConfig::default()
            }),
            ..NatsConfig::default()
        },
    );
    let err = start_fails(&config).await;
    assert!(
        err.contains("TLS with NATS server") && err.contains("does not speak TLS"),
        "{err}"
    );
    assert_hidden(&[token], &[&err]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_with_user_and_password() {
    let scratch = Scratch::new();
    let password = "pa55-over-mutual-tls-3e8a";
    let (server, ca_file, pki) = tls_server(
        &scratch,
        true,
        &format!("authorization {{ users = [ {{ user: \"host-a\", password: {password:?} }} ] }}"),
    );
    let (cert, key) = pki.issue(&["host-a"]);
    let password_file = scratch.write("password", password);
    let config = |cert_file: Option<PathBuf>, key_file: Option<PathBuf>| {
        host_config(
            &server,
            NatsConfig {
                user: Some("host-a".into()),
                password_file: Some(password_file.clone()),
                tls: Some(NatsTlsConfig {
                    ca_file: Some(ca_file.clone()),
                    cert_file,
                    key_file,
                    required: true,
                }),
                ..NatsConfig::default()
            },
        )
    };
    let good = config(
        Some(scratch.write("client.pem", &cert)),
        Some(scratch.write("client-key.pem", &key)),
    );
    assert_eq!(call_between_two_hosts(&good).await, "there got hi");

    // No client certificate: the server refuses the handshake.
    let err = start_fails(&config(None, None)).await;
    assert!(
        err.contains("TLS with NATS server") && err.contains("nats.tls.cert_file"),
        "{err}"
    );
    // A certificate from a CA the server does not trust.
    let (rogue_cert, rogue_key) = Pki::new("rogue CA").issue(&["host-a"]);
    let err2 = start_fails(&config(
        Some(scratch.write("rogue.pem", &rogue_cert)),
        Some(scratch.write("rogue-key.pem", &rogue_key)),
    ))
    .await;
    assert!(err2.contains("TLS with NATS server"), "{err2}");
    assert_hidden(
        &[password, &pem_body(&key), &pem_body(&rogue_key)],
        &[&err, &err2, &format!("{good:?}")],
    );
}

/// The child half of [`secrets_from_environment_variables`]: run only by it, in its own
/// process, with the secrets in its environment (setting variables in this
/// multi-threaded process would not be sound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by secrets_from_environment_variables, with its environment"]
async fn child_with_secrets_in_environment() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let config = |url: String, nats: NatsConfig| HostConfig {
        nats: NatsConfig {
            url: Some(url),
            ..nats
        },
        ..HostConfig::default()
    };
    let token = config(
        var("NATS_AUTH_TEST_TOKEN_URL"),
        NatsConfig {
            token_env: Some("NATS_AUTH_TEST_TOKEN".into()),
            ..NatsConfig::default()
        },
    );
    let password = config(
        var("NATS_AUTH_TEST_USERS_URL"),
        NatsConfig {
            user: Some("host-a".into()),
            password_env: Some("NATS_AUTH_TEST_PASSWORD".into()),
            ..NatsConfig::default()
        },
    );
    let nkey = config(
        var("NATS_AUTH_TEST_USERS_URL"),
        NatsConfig {
            nkey_seed_env: Some("NATS_AUTH_TEST_SEED".into()),
            ..NatsConfig::default()
        },
    );
    for config in [&token, &password, &nkey] {
        assert_eq!(call_between_two_hosts(config).await, "there got hi", "{config:?}");
    }
    let wrong = config(
        var("NATS_AUTH_TEST_TOKEN_URL"),
        NatsConfig {
            token_env: Some("NATS_AUTH_TEST_WRONG_TOKEN".into()),
            ..NatsConfig::default()
        },
    );
    let err = start_fails(&wrong).await;
    assert!(
        err.contains("rejected this host's credentials") && err.contains("NATS_AUTH_TEST_WRONG_TOKEN"),
        "{err}"
    );
    let secrets = [
        "NATS_AUTH_TEST_TOKEN",
        "NATS_AUTH_TEST_WRONG_TOKEN",
        "NATS_AUTH_TEST_PASSWORD",
        "NATS_AUTH_TEST_SEED",
    ]
    .map(var);
    let texts = [
        &err,
        &format!("{token:?}"),
        &format!("{password:?}"),
        &format!("{nkey:?}"),
    ];
    for secret in &secrets {
        for text in texts {
            assert!(!text.contains(secret.as_str()), "a secret appears in:\n{text}");
        }
    }
    println!("child: all secrets-from-environment checks passed");
}

#[test]
fn secrets_from_environment_variables() {
    let scratch = Scratch::new();
    let token = "t0ken-from-env-a4c1";
    let password = "pa55-from-env-0b7d";
    let user = KeyPair::new_user();
    let token_server = scratch.server(&format!("authorization {{ token: {token:?} }}"));
    let users_server = NatsServer::start_with_config(&scratch.write(
        "users.conf",
        &format!(
            "authorization {{ users = [ {{ user: \"host-a\", password: {password:?} }}, {{ nkey: {:?} }} ] }}",
            user.public_key()
        ),
    ));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_with_secrets_in_environment",
            "--ignored",
            "--nocapture",
        ])
        .env("NATS_AUTH_TEST_TOKEN_URL", token_server.url())
        .env("NATS_AUTH_TEST_USERS_URL", users_server.url())
        .env("NATS_AUTH_TEST_TOKEN", token)
        .env("NATS_AUTH_TEST_WRONG_TOKEN", "wr0ng-t0ken-from-env")
        .env("NATS_AUTH_TEST_PASSWORD", password)
        .env("NATS_AUTH_TEST_SEED", user.seed().unwrap())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run this test binary again");
    let deadline = std::time::Instant::now() + 4 * STEP;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not finish within {:?}", 4 * STEP);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "the child test failed ({status}):\n{out}");
    // The child really ran (a filter that matched nothing would also succeed).
    assert!(
        out.contains("child: all secrets-from-environment checks passed"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_that_is_not_set_fails_at_start() {
    let (_reserved, port) = dead_port();
    let mut config = HostConfig::default();
    config.nats.url = Some(format!("nats://127.0.0.1:{port}"));
    config.nats.token_env = Some("NATS_AUTH_TEST_SURELY_NOT_SET_8f3e".into());
    let err = start_fails(&config).await;
    assert!(
        err.contains(
            "`nats.token_env` names the variable `NATS_AUTH_TEST_SURELY_NOT_SET_8f3e`, which is not set"
        ),
        "{err}"
    );
}

/// Credentials do not change the rule that a host starts while NATS is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_with_credentials_starts_while_nats_is_unreachable() {
    let scratch = Scratch::new();
    let (_reserved, port) = dead_port(); // accepted by the kernel, never answered
    let mut config = HostConfig::default();
    config.nats.url = Some(format!("nats://127.0.0.1:{port}"));
    config.nats.token_file = Some(scratch.write("token", "some-t0ken"));
    let host = within("start while NATS is down", Dispatcher::new(&config))
        .await
        .expect("the host must start while NATS is unreachable");
    host.add_component("here");
    let servers = within("servers while NATS is down", host.servers("here"))
        .await
        .unwrap();
    assert_eq!(servers.len(), 1, "only the local server while NATS is down");
}

#[test]
fn conflicting_or_unsafe_nats_keys_are_rejected() {
    let rejected = |toml: &str, key: &str, needle: &str| {
        let err = HostConfig::from_toml(toml).expect_err(toml).to_string();
        assert!(err.contains(key) && err.contains(needle), "{toml}\n=> {err}");
        err
    };
    let url = "[nats]\nurl = \"nats://127.0.0.1:4222\"\n";
    rejected(
        &format!("{url}token_env = \"T\"\ncredentials_file = \"host.creds\""),
        "nats:",
        "at most one way to authenticate, but `credentials_file` and a token are set",
    );
    rejected(
        &format!("{url}nkey_seed_env = \"S\"\nuser = \"a\"\npassword_env = \"P\""),
        "nats:",
        "an nkey seed and `user` and password",
    );
    rejected(
        &format!("{url}token_file = \"t\"\ntoken_env = \"T\""),
        "nats.token_file",
        "not both",
    );
    rejected(&format!("{url}user = \"a\""), "nats.user", "go together");
    rejected(
        &format!("{url}password_env = \"P\""),
        "nats.password_file",
        "go together",
    );
    rejected(
        &format!("{url}token_env = \"\""),
        "nats.token_env",
        "name of an environment variable",
    );
    rejected(
        &format!("{url}[nats.tls]\ncert_file = \"c.pem\""),
        "nats.tls.cert_file",
        "set both `cert_file` and `key_file`",
    );
    // No secret in the config text: a password in the url is refused, and not repeated.
    let err = rejected(
        "[nats]\nurl = \"nats://host-a:hunter2-in-url@127.0.0.1:4222\"",
        "nats.url",
        "must not carry credentials",
    );
    assert!(!err.contains("hunter2-in-url"), "{err}");
    rejected(
        "[nats]\nurl = \"tls://t0kenInUrl@127.0.0.1:4222\"",
        "nats.url",
        "must not carry credentials",
    );
    // There is no key for a secret's value.
    rejected(
        &format!("{url}password = \"x\""),
        "unknown field `password`",
        "password_file",
    );
    rejected(
        &format!("{url}token = \"x\""),
        "unknown field `token`",
        "token_file",
    );

    // What is accepted: one way, plus TLS; `required` defaults to true.
    let config = HostConfig::from_toml(&format!(
        "{url}user = \"a\"\npassword_env = \"P\"\n[nats.tls]\nca_file = \"ca.pem\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\""
    ))
    .unwrap();
    assert!(config.nats.tls.as_ref().unwrap().required);
    let config = HostConfig::from_toml(&format!("{url}[nats.tls]\nrequired = false")).unwrap();
    assert!(!config.nats.tls.unwrap().required);
}

#[test]
fn nats_files_are_relative_to_the_config_file() {
    let scratch = Scratch::new();
    let path = scratch.write(
        "host.toml",
        "[nats]\nurl = \"nats://127.0.0.1:4222\"\ncredentials_file = \"secrets/host.creds\"\n\
         [nats.tls]\nca_file = \"ca.pem\"\ncert_file = \"/etc/abs.pem\"\nkey_file = \"k.pem\"\n",
    );
    let config = HostConfig::load(&path).unwrap();
    let dir = scratch.0.path();
    assert_eq!(config.nats.credentials_file, Some(dir.join("secrets/host.creds")));
    let tls = config.nats.tls.unwrap();
    assert_eq!(tls.ca_file, Some(dir.join("ca.pem")));
    assert_eq!(tls.cert_file, Some(PathBuf::from("/etc/abs.pem")));
    assert_eq!(tls.key_file, Some(dir.join("k.pem")));
}
