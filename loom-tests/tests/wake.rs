//! Models 1 and 2: the wait/wake protocol on data and on space.
//!
//! The writer is kept alive until the reader has seen the data, and the reader until
//! the writer has finished: a close wakes the peer unconditionally and would hide a lost
//! data or space wake-up.

#![cfg(loom)]

mod common;

use common::{End, Roles, Via, fill_and_consume, model, race, read, read_to_end, write, write_all};
use wrpc_ring::RingReader;

/// Reads until `n` bytes have arrived (never EOF: the writer is open).
fn read_exactly(reader: &mut RingReader, via: Via, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = match via {
            Via::Read(len) => read(reader, len).unwrap(),
            Via::BufRead => fill_and_consume(reader).unwrap(),
        };
        assert!(!chunk.is_empty(), "EOF while the writer is open");
        got.extend_from_slice(&chunk);
    }
    got
}

/// Model 1: the reader waits on an empty 4-byte ring, the writer writes two bytes in two
/// writes. The reader gets both, in order, and is never left parked: the writer stays
/// open until the reader is done, so only a data wake-up can end the reader's wait.
fn reader_waits_writer_writes(via: Via, roles: Roles) {
    model(move || {
        let (mut writer, mut reader) = wrpc_ring::pipe(4);
        let (writer, mut reader) = race(
            roles,
            move || {
                assert_eq!(write(&mut writer, b"a").unwrap(), 1);
                assert_eq!(write(&mut writer, b"b").unwrap(), 1);
                writer
            },
            move || {
                assert_eq!(read_exactly(&mut reader, via, 2), b"ab");
                reader
            },
        );
        drop(writer);
        assert_eq!(read_to_end(&mut reader, via), (Vec::new(), End::Eof));
    });
}

both_roles!(reader_waits_writer_writes_read => |roles| reader_waits_writer_writes(Via::Read(4), roles));
both_roles!(reader_waits_writer_writes_buf_read => |roles| reader_waits_writer_writes(Via::BufRead, roles));

/// Model 2: a 1-byte ring and a writer with two bytes, so it must wait for space unless
/// the reader was quick; the reader drains. The writer completes and the reader gets the
/// bytes in order; the reader stays alive until the writer is done, so only a space
/// wake-up can end the writer's wait. (Three bytes, two waits, take loom about six
/// minutes per variant at a bound of 3, for no extra protocol step.) Cached positions
/// only: a 1-byte ring's cache never shows room or data, so fresh mode explored exactly
/// the same executions.
fn writer_waits_reader_drains(via: Via, roles: Roles) {
    model(move || {
        let (mut writer, mut reader) = wrpc_ring::pipe(1);
        let (writer, mut reader) = race(
            roles,
            move || {
                write_all(&mut writer, b"xy").unwrap();
                writer
            },
            move || {
                assert_eq!(read_exactly(&mut reader, via, 2), b"xy");
                reader
            },
        );
        drop(writer);
        assert_eq!(read_to_end(&mut reader, via), (Vec::new(), End::Eof));
    });
}

both_roles!(cached_only writer_waits_reader_drains_read => |roles| writer_waits_reader_drains(Via::Read(2), roles));
both_roles!(cached_only writer_waits_reader_drains_buf_read => |roles| writer_waits_reader_drains(Via::BufRead, roles));

/// Model 2b: the writer waits on a ring that is *partly* drained. A 2-byte ring; the
/// writer writes `x`, then `yz`, which cannot all fit until the reader has read, so it
/// may wait for space while the ring holds one byte or two. The reader drains and stays
/// alive. With a 1-byte ring a read always begins on a full ring, so model 2 cannot tell
/// "wake the writer after every read that freed space" from "… only if the ring was full
/// when the read began"; here a read can begin with one byte in the ring, the writer
/// then fill it and park, and only a wake from that read can end its wait.
///
/// Through `poll_read` only, with cached positions only, to keep the suite near a minute
/// and a half: fresh positions explore 2.3 times as many executions for the same
/// protocol steps, and a `fill_buf` variant adds 236 000 more (its `consume` wakes the
/// writer through the same `wake_writer` as model 2's `fill_buf` variant).
fn writer_waits_on_partly_drained_ring(via: Via, roles: Roles) {
    model(move || {
        let (mut writer, mut reader) = wrpc_ring::pipe(2);
        let (writer, mut reader) = race(
            roles,
            move || {
                assert_eq!(write(&mut writer, b"x").unwrap(), 1);
                write_all(&mut writer, b"yz").unwrap();
                writer
            },
            move || {
                assert_eq!(read_exactly(&mut reader, via, 3), b"xyz");
                reader
            },
        );
        drop(writer);
        assert_eq!(read_to_end(&mut reader, via), (Vec::new(), End::Eof));
    });
}

both_roles!(cached_only writer_waits_on_partly_drained_ring_read => |roles| writer_waits_on_partly_drained_ring(Via::Read(2), roles));
