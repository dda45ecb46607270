//! How a ring is handed back when both of its halves are gone, without the ring knowing
//! who takes it.
//!
//! Like rtrb's halves, the ring knows nothing of pools: whoever wants its rings back
//! (the [`RingPool`](crate::RingPool)) implements [`Recycle`] and passes itself, as an
//! `Arc<dyn Recycle>`, when it leases a [`Detached`] ring. Each half deposits its part in
//! [`Shared`]'s `parts` as it is dropped; the second to arrive finds the ring whole,
//! empties and resets it, and hands it to its home by value. A ring with no home (made
//! by [`pipe`](crate::pipe)) is freed instead.
//!
//! So a home only ever receives a ring that is as good as new: no byte, close state or
//! waker of the previous user survives, whatever the home does (or forgets to do).

use std::fmt;

use super::buffer::{self, Consumer, Producer};
use super::shared::Shared;
use super::{RingReader, RingWriter};
use crate::sync::{Arc, lock};

/// Takes back rings whose halves are both gone.
pub(crate) trait Recycle: Send + Sync {
    /// Takes `ring`, which is empty, open and holds no waker. Called by the thread that
    /// dropped the ring's last half, with no lock of the ring held.
    fn recycle(&self, ring: Detached);
}

/// Where a leased ring goes back to.
pub(crate) type Home = Arc<dyn Recycle>;

/// What the halves leave behind as they are dropped, so that the last one can hand the
/// ring back whole.
#[derive(Default)]
pub(crate) struct Parts {
    producer: Option<Producer>,
    consumer: Option<Consumer>,
    /// Set while the ring is leased from a home.
    home: Option<Home>,
}

impl fmt::Debug for Parts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parts")
            .field("producer", &self.producer.is_some())
            .field("consumer", &self.consumer.is_some())
            .field("home", &self.home.is_some())
            .finish()
    }
}

/// A whole ring with neither half alive: its shared state and its storage.
pub(crate) struct Detached {
    shared: Arc<Shared>,
    producer: Producer,
    consumer: Consumer,
}

impl Detached {
    /// Allocates a fresh ring of `capacity` bytes.
    pub(crate) fn new(capacity: usize) -> Self {
        let (producer, consumer) = buffer::ring(capacity);
        Self {
            shared: Arc::new(Shared::new()),
            producer,
            consumer,
        }
    }

    /// Splits the ring into its two halves. Once both are dropped, the ring goes back to
    /// `home`, or is freed if there is none.
    pub(crate) fn lease(self, home: Option<Home>) -> (RingWriter, RingReader) {
        let Self {
            shared,
            producer,
            consumer,
        } = self;
        if home.is_some() {
            lock(&shared.parts).home = home;
        }
        let capacity = producer.capacity();
        let reader = RingReader::new(shared.clone(), consumer, capacity);
        (RingWriter::new(shared, producer), reader)
    }

    /// Makes the ring as good as new: empty, open, no waker.
    fn reset(&mut self) {
        self.consumer.clear();
        self.shared.reset();
    }
}

impl fmt::Debug for Detached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Detached")
            .field("capacity", &self.producer.capacity())
            .finish_non_exhaustive()
    }
}

/// Which half a [`release`] deposits.
pub(crate) enum Half {
    Producer(Producer),
    Consumer(Consumer),
}

/// Called by each half as it is dropped, after its close. The second half to arrive
/// finds the ring whole, resets it and hands it to its home (or frees it).
pub(crate) fn release(shared: &Arc<Shared>, half: Half) {
    let mut parts = lock(&shared.parts);
    match half {
        Half::Producer(producer) => parts.producer = Some(producer),
        Half::Consumer(consumer) => parts.consumer = Some(consumer),
    }
    if parts.producer.is_none() || parts.consumer.is_none() {
        return; // the other half is still alive
    }
    let Some(home) = parts.home.take() else {
        return; // no home: the parts are freed with the last `Arc<Shared>`
    };
    let (Some(producer), Some(consumer)) = (parts.producer.take(), parts.consumer.take()) else {
        return;
    };
    drop(parts);
    let mut ring = Detached {
        shared: shared.clone(),
        producer,
        consumer,
    };
    // Reset before anyone else can see the ring: the home may lease it at once.
    ring.reset();
    home.recycle(ring);
}
