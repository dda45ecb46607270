#!/usr/bin/env python3
"""Checks that the loom models can fail: plants known bugs in copies of the crate.

Each mutant is a copy of the crate (Cargo.toml, Cargo.lock, src/, benches/ and
loom-tests/) under a scratch directory, with one bug applied by exact text replacement;
/work tree sources are never touched. Every model then runs in its own process (a loom
failure inside `block_on` panics again while unwinding and aborts the whole test binary,
so one failing model would hide the others), and a table says which models caught the
mutant and how. See docs/loom.md for the results.

usage: loom-tests/mutants/run.py [--bound N] [--scratch DIR] [--files wake,close,pool] [MUTANT ...]
       (no MUTANT: the unmodified crate first, then every mutant below)
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# name -> (what the bug is, [(file, old text, new text), ...])
MUTANTS = {
    "a_no_recheck_reader": (
        "reader returns Pending right after registering, without re-checking",
        [("src/ring/reader.rs",
          "        close = shared.reader_wait(cx.waker(), waits);\n",
          "        close = shared.reader_wait(cx.waker(), waits);\n"
          "        return Poll::Pending; // MUTANT: no re-check\n")]),
    "b_wake_reader_load_first": (
        "wake_reader looks for a waiter with a plain load before clearing (no RMW ordering)",
        [("src/ring/shared.rs",
          "        self.reader.claim_and_wake(&self.state, READER_WAITING);\n    }\n\n    /// The reader is gone",
          "        if self.state.load(Ordering::Relaxed) & READER_WAITING != 0 { // MUTANT\n"
          "            self.reader.claim_and_wake(&self.state, READER_WAITING);\n        }\n"
          "    }\n\n    /// The reader is gone")]),
    "b2_announce_relaxed": (
        "a side announces with a Relaxed RMW: the cell is not published to the claimer",
        [("src/ring/wait.rs",
          "        let word = state.fetch_or(bit, Ordering::AcqRel);\n",
          "        let word = state.fetch_or(bit, Ordering::Relaxed); // MUTANT\n")]),
    "c1_close_relaxed": (
        "clean close sets its bit with a Relaxed RMW (not a bug: see docs/loom.md)",
        [("src/ring/shared.rs",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::SeqCst);",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::Relaxed); // MUTANT")]),
    "c1b_close_relaxed_wake_relaxed": (
        "clean close Relaxed and wake_reader's RMW Relaxed: the close overtakes the data",
        [("src/ring/shared.rs",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::SeqCst);",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::Relaxed); // MUTANT"),
         ("src/ring/wait.rs",
          "        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {\n            self.wake_taken();",
          "        if state.fetch_and(!bit, Ordering::Relaxed) & bit != 0 { // MUTANT\n            self.wake_taken();")]),
    "c1c_publish_after_close": (
        "writer publishes each write lazily, and sets the close/abort bit before publishing",
        [("src/ring/buffer.rs",
          "            if n > 0 {\n                self.tail += n;\n"
          "                self.storage.tail.store(self.tail, Ordering::Release);\n"
          "            }\n            n\n        }\n",
          "            if n > 0 {\n                self.tail += n; // MUTANT: published later\n"
          "            }\n            n\n        }\n\n"
          "        pub(crate) fn publish(&mut self) {\n"
          "            self.storage.tail.store(self.tail, Ordering::Release);\n        }\n"),
         ("src/ring/writer.rs",
          "        if bufs.iter().all(|buf| buf.is_empty()) {\n",
          "        if let Some(p) = self.producer.get_mut() { p.publish(); } // MUTANT\n"
          "        if bufs.iter().all(|buf| buf.is_empty()) {\n"),
         ("src/ring/writer.rs",
          "            self.closed = true;\n            self.shared.close_writer(&mut self.waits);\n",
          "            self.closed = true;\n            self.shared.close_writer(&mut self.waits);\n"
          "            if let Some(p) = self.producer.get_mut() { p.publish(); } // MUTANT\n"),
         ("src/ring/writer.rs",
          "            self.closed = true;\n            self.shared.abort_writer(reason.into(), &mut self.waits);\n",
          "            self.closed = true;\n            self.shared.abort_writer(reason.into(), &mut self.waits);\n"
          "            if let Some(p) = self.producer.get_mut() { p.publish(); } // MUTANT\n")]),
    "c2_ring_before_close_state": (
        "reader looks at the ring before loading the close state",
        [("src/ring/reader.rs",
          "    let mut close = shared.close_bits();\n",
          "    let readable = consumer.has_readable_fresh(); // MUTANT: ring first\n"
          "    let mut close = shared.close_bits();\n"),
         ("src/ring/reader.rs",
          "    if consumer.has_readable_fresh() {\n        return Poll::Ready(WriterEnd::Open);\n",
          "    if if close.is_open() { consumer.has_readable_fresh() } else { readable } { // MUTANT\n"
          "        return Poll::Ready(WriterEnd::Open);\n")]),
    "c3_close_load_relaxed": (
        "reader loads the close state with Relaxed instead of Acquire",
        [("src/ring/shared.rs",
          "    pub(crate) fn close_bits(&self) -> CloseBits {\n        CloseBits(self.load())",
          "    pub(crate) fn close_bits(&self) -> CloseBits {\n"
          "        CloseBits(self.state.load(Ordering::Relaxed)) // MUTANT")]),
    "d_reader_drop_no_wake": (
        "dropping the reader does not wake the writer",
        [("src/ring/shared.rs",
          "        self.state.fetch_or(READER_CLOSED, Ordering::SeqCst);\n"
          "        self.writer.claim_and_wake(&self.state, WRITER_WAITING);\n",
          "        self.state.fetch_or(READER_CLOSED, Ordering::SeqCst);\n        // MUTANT: no wake\n")]),
    "e_recycle_no_clear": (
        "a ring handed back is not emptied",
        [("src/ring/recycle.rs", "        self.consumer.clear();\n",
          "        // MUTANT: self.consumer.clear();\n")]),
    "e2_recycle_no_reset": (
        "a ring handed back keeps its close state (and wakers)",
        [("src/ring/recycle.rs", "        self.shared.reset();\n",
          "        // MUTANT: self.shared.reset();\n")]),
    "f_recycle_keeps_home": (
        "an idle ring keeps its pool alive (reference cycle)",
        [("src/ring/recycle.rs", "    let Some(home) = parts.home.take() else {",
          "    let Some(home) = parts.home.clone() else { // MUTANT: cycle")]),
    "g_no_recheck_writer": (
        "writer returns Pending right after registering, without re-checking",
        [("src/ring/writer.rs",
          "            return Poll::Ready(Err(broken_pipe()));\n        }\n"
          "        match self.producer.get_mut() {\n"
          "            Some(producer) if !producer.is_full() => Poll::Ready(Ok(())),\n"
          "            Some(_) => Poll::Pending,\n",
          "            return Poll::Ready(Err(broken_pipe()));\n        }\n"
          "        return Poll::Pending; // MUTANT: no re-check\n"
          "        match self.producer.get_mut() {\n"
          "            Some(producer) if !producer.is_full() => Poll::Ready(Ok(())),\n"
          "            Some(_) => Poll::Pending,\n")]),
    "h_wake_writer_load_first": (
        "wake_writer looks for a waiter with a plain load before clearing (no RMW ordering)",
        [("src/ring/shared.rs",
          "        self.writer.claim_and_wake(&self.state, WRITER_WAITING);\n    }\n\n    /// Ends the stream cleanly",
          "        if self.state.load(Ordering::Relaxed) & WRITER_WAITING != 0 { // MUTANT\n"
          "            self.writer.claim_and_wake(&self.state, WRITER_WAITING);\n        }\n"
          "    }\n\n    /// Ends the stream cleanly")]),
    "i_abort_bit_before_reason": (
        "abort sets its bit before storing the reason",
        [("src/ring/shared.rs",
          "        *lock(&self.abort_reason) = Some(reason);\n"
          "        self.state.fetch_or(WRITER_ABORTED, Ordering::SeqCst);\n",
          "        self.state.fetch_or(WRITER_ABORTED, Ordering::SeqCst); // MUTANT\n"
          "        *lock(&self.abort_reason) = Some(reason);\n")]),
    "j_close_no_wake": (
        "a clean close does not wake the reader",
        [("src/ring/shared.rs",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::SeqCst);\n"
          "        self.reader.claim_and_wake(&self.state, READER_WAITING);\n",
          "        self.state.fetch_or(WRITER_CLOSED, Ordering::SeqCst);\n        // MUTANT: no wake\n")]),
    "k_tail_relaxed": (
        "the ring publishes written bytes with a Relaxed tail store",
        [("src/ring/buffer.rs",
          "            if n > 0 {\n                self.tail += n;\n"
          "                self.storage.tail.store(self.tail, Ordering::Release);",
          "            if n > 0 {\n                self.tail += n;\n"
          "                self.storage.tail.store(self.tail, Ordering::Relaxed); // MUTANT")]),
    "n_reset_keeps_wakers": (
        "Shared::reset() keeps the stale wakers of the ring's previous user",
        [("src/ring/wait.rs",
          "        let old = self.waker.with_mut(|cell| unsafe { (*cell).take() });\n"
          "        drop(old);\n        self.woken.store(0, Ordering::Relaxed);\n",
          "        self.woken.store(0, Ordering::Relaxed); // MUTANT: the waker stays\n")]),
    "o_read_wakes_writer_only_if_full": (
        "poll_read wakes the writer only if the ring was full when the read began",
        [("src/ring/buffer.rs",
          "        pub(crate) fn has_readable_fresh(&self) -> bool {\n            self.slots() > 0\n        }\n",
          "        pub(crate) fn has_readable_fresh(&self) -> bool {\n            self.slots() > 0\n        }\n\n"
          "        pub(crate) fn mutant_len(&self) -> usize {\n            self.cached_slots()\n        }\n"),
         ("src/ring/reader.rs",
          "        let copied = consumer.read_into(buf);\n",
          "        let was_full = consumer.mutant_len() == this.capacity; // MUTANT\n"
          "        let copied = consumer.read_into(buf);\n"),
         ("src/ring/reader.rs",
          "        if copied > 0 {\n            this.shared.wake_writer();",
          "        if copied > 0 && was_full { // MUTANT\n            this.shared.wake_writer();")]),
    "p_reader_ignores_announce_close_bits": (
        "the reader's re-check uses the close bits of its first load, not the announcement's",
        [("src/ring/reader.rs",
          "        close = shared.reader_wait(cx.waker(), waits);\n",
          "        let _ = shared.reader_wait(cx.waker(), waits); // MUTANT: close bits dropped\n")]),
    "q_writer_ignores_announce_close_bits": (
        "the writer's re-check ignores READER_CLOSED in the announcement's result",
        [("src/ring/writer.rs",
          "        if self.shared.writer_wait(cx.waker(), &mut self.waits) {\n",
          "        if self.shared.writer_wait(cx.waker(), &mut self.waits) && false { // MUTANT\n")]),
    "r_replace_ignores_woken": (
        "a side replaces its waker without waiting for the claims' wakes to finish",
        [("src/ring/wait.rs",
          "        self.woken.load(Ordering::Acquire) == own.0\n",
          "        let _ = self.woken.load(Ordering::Acquire) == own.0; // MUTANT\n        true\n")]),
    "s_woken_before_wake": (
        "the claimer says its wake finished before it reads the waker",
        [("src/ring/wait.rs",
          "        self.woken.store(woken.wrapping_add(1), Ordering::Release);\n",
          "        // MUTANT: said before the wake\n"),
         ("src/ring/wait.rs",
          "    fn wake_taken(&self) {\n",
          "    fn wake_taken(&self) {\n"
          "        let n = self.woken.load(Ordering::Relaxed); // MUTANT\n"
          "        self.woken.store(n.wrapping_add(1), Ordering::Release);\n")]),
    "t_woken_relaxed": (
        "the claimer's `woken` store is Relaxed: its read of the waker is not ordered before a replacement",
        [("src/ring/wait.rs",
          "        self.woken.store(woken.wrapping_add(1), Ordering::Release);\n",
          "        self.woken.store(woken.wrapping_add(1), Ordering::Relaxed); // MUTANT\n")]),
    "u_replace_without_retract": (
        "a side replaces its waker without retracting its outstanding announcement",
        [("src/ring/wait.rs",
          "        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {\n            own.0 = own.0.wrapping_sub(1);\n        }\n",
          "        // MUTANT: no retraction\n")]),
    "w_wake_without_claim": (
        "the peer reads the waker cell even when its claim found no announcement",
        [("src/ring/wait.rs",
          "        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 {\n            self.wake_taken();",
          "        if state.fetch_and(!bit, Ordering::AcqRel) & bit != 0 || true { // MUTANT\n            self.wake_taken();")]),
    "v_merged_announcement_counted": (
        "an announcement that finds the bit already set is counted as a new one",
        [("src/ring/wait.rs",
          "        if word & bit == 0 {\n            // A new announcement",
          "        if true {\n            // MUTANT A new announcement")]),
}

TEST_FILES = ["wake", "close", "pool", "waker"]


def copy_crate(dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for name in ["Cargo.toml", "Cargo.lock"]:
        shutil.copy(os.path.join(ROOT, name), dst)
    for name in ["src", "benches"]:
        if os.path.isdir(os.path.join(ROOT, name)):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(dst, name))
    shutil.copytree(os.path.join(ROOT, "loom-tests"), os.path.join(dst, "loom-tests"),
                    ignore=shutil.ignore_patterns("target", "mutants"))


def apply(dst, edits):
    for path, old, new in edits:
        full = os.path.join(dst, path)
        with open(full) as f:
            text = f.read()
        if text.count(old) != 1:
            sys.exit(f"{path}: the text to replace occurs {text.count(old)} times, not once")
        with open(full, "w") as f:
            f.write(text.replace(old, new))


def cargo(args, cwd, env, **kw):
    return subprocess.run(["cargo", "test", "--release", *args], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run(name, edits, scratch, env, timeout, files):
    dst = os.path.join(scratch, name)
    copy_crate(dst)
    apply(dst, edits)
    tests_dir = os.path.join(dst, "loom-tests")
    built = cargo(["--no-run"], tests_dir, env)
    if built.returncode != 0:
        print(built.stdout[-3000:])
        sys.exit(f"{name}: build failed")
    results = []
    for test_file in files:
        listed = cargo(["--test", test_file, "--", "--list"], tests_dir, env).stdout
        for test in re.findall(r"^(\S+): test$", listed, re.M):
            start = time.time()
            try:
                out = cargo(["--test", test_file, "--", "--exact", test], tests_dir, env,
                            timeout=timeout)
                rc, output = out.returncode, out.stdout
            except subprocess.TimeoutExpired:
                rc, output = "timeout", ""
            message = ""
            lines = output.splitlines()
            for i, line in enumerate(lines):
                if " panicked at " in line and i + 1 < len(lines):
                    message = re.sub(r"\[\(Id.*", "[..]", lines[i + 1])
                    break
            results.append((test, rc, time.time() - start, message))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bound", default="3", help="LOOM_MAX_PREEMPTIONS (default 3)")
    parser.add_argument("--scratch", default=os.path.join(
        os.environ.get("TMPDIR", "/tmp"), "wrpc-ring-mutants"))
    parser.add_argument("--timeout", type=int, default=600, help="seconds per model")
    parser.add_argument("--files", default=",".join(TEST_FILES),
                        help="comma-separated test files to run (default: all)")
    parser.add_argument("mutants", nargs="*")
    args = parser.parse_args()
    files = args.files.split(",")
    names = args.mutants or ["unmodified", *MUTANTS]
    env = dict(os.environ, RUSTFLAGS="--cfg loom", LOOM_MAX_PREEMPTIONS=args.bound,
               CARGO_TARGET_DIR=os.path.join(args.scratch, "target"))
    for name in names:
        about, edits = ("the crate as it is", []) if name == "unmodified" else MUTANTS[name]
        results = run(name, edits, args.scratch, env, args.timeout, files)
        failed = [r for r in results if r[1] != 0]
        print(f"== {name}: {about}")
        print(f"   {len(failed)}/{len(results)} models failed, "
              f"{sum(r[2] for r in results):.0f} s in all")
        for test, rc, secs, message in failed:
            print(f"   {test:<60} rc={rc} {secs:5.1f}s {message}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
