//! Models 3 and 4: close frames racing the peer's pending operation.
//!
//! Cached positions only: with these 1- and 2-byte rings every position check that
//! decides anything finds the cache empty (or full) and loads anyway, so fresh mode
//! explored exactly the same executions (measured at bound 3) for twice the time.

#![cfg(loom)]

mod common;

use std::io;

use common::{End, Roles, Via, model, race, read, read_to_end, write, write_all};

/// How the writer ends the stream in model 3.
#[derive(Debug, Clone, Copy)]
enum Close {
    Shutdown,
    Abort,
    Drop,
}

const REASON: &str = "encoder failed";

/// Model 3: the writer writes two bytes into a 2-byte ring and closes while the reader
/// may be waiting. The reader sees both bytes, then exactly the close the writer made:
/// never EOF (or the abort) before the data, never a hang. After a shutdown or an abort
/// the writer stays alive until the reader is done, so only the close frame itself can
/// end the read.
fn close_races_pending_read(close: Close, via: Via, roles: Roles) {
    model(move || {
        let (mut writer, mut reader) = wrpc_ring::pipe(2);
        let expected = match close {
            Close::Shutdown | Close::Drop => End::Eof,
            Close::Abort => End::Aborted(REASON.to_owned()),
        };
        let sticky = expected.clone();
        let (writer, mut reader) = race(
            roles,
            move || {
                assert_eq!(write(&mut writer, b"ab").unwrap(), 2);
                match close {
                    Close::Shutdown => common::shutdown(&mut writer).unwrap(),
                    Close::Abort => writer.abort(REASON),
                    Close::Drop => return None,
                }
                Some(writer)
            },
            move || {
                let (got, end) = read_to_end(&mut reader, via);
                assert_eq!(got, b"ab", "the reader lost bytes written before the close");
                assert_eq!(end, expected);
                reader
            },
        );
        // The close is sticky.
        assert_eq!(read_to_end(&mut reader, via), (Vec::new(), sticky));
        drop(writer);
    });
}

both_roles!(cached_only shutdown_races_pending_read => |roles| close_races_pending_read(Close::Shutdown, Via::Read(4), roles));
both_roles!(cached_only shutdown_races_pending_fill_buf => |roles| close_races_pending_read(Close::Shutdown, Via::BufRead, roles));
both_roles!(cached_only abort_races_pending_read => |roles| close_races_pending_read(Close::Abort, Via::Read(4), roles));
both_roles!(cached_only abort_races_pending_fill_buf => |roles| close_races_pending_read(Close::Abort, Via::BufRead, roles));
both_roles!(cached_only writer_drop_races_pending_read => |roles| close_races_pending_read(Close::Drop, Via::Read(4), roles));
both_roles!(cached_only writer_drop_races_pending_fill_buf => |roles| close_races_pending_read(Close::Drop, Via::BufRead, roles));

/// Model 4: a 1-byte ring and a writer with three bytes, while the reader is dropped
/// after reading `read_first` bytes. At most `read_first + 1` bytes ever fit, so the
/// writer must end up waiting for space that never comes: it is woken and fails with
/// `BrokenPipe`, and so does every later write.
fn reader_drop_races_pending_write(read_first: usize, roles: Roles) {
    model(move || {
        let (mut writer, mut reader) = wrpc_ring::pipe(1);
        race(
            roles,
            move || {
                let err = write_all(&mut writer, b"abc").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
                assert!(writer.is_closed());
                let err = write(&mut writer, b"d").unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
            },
            move || {
                if read_first > 0 {
                    assert_eq!(read(&mut reader, read_first).unwrap(), &b"abc"[..read_first]);
                }
                drop(reader);
            },
        );
    });
}

both_roles!(cached_only reader_drop_races_pending_write => |roles| reader_drop_races_pending_write(0, roles));
both_roles!(cached_only reader_drop_after_read_races_pending_write => |roles| reader_drop_races_pending_write(1, roles));
