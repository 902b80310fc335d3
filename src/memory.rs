//! One memory budget for everything being read at once.
//!
//! Reading an object costs its stored bytes, its inflated body and the parse of that body
//! (simd-json's tape and buffers, up to about 17 bytes per byte of a body made of tiny
//! values). Whoever can write to the bucket chooses all three, so every reader — the replay
//! and hunt threads, the daemon's concurrent fetches — reserves what an object will cost
//! before spending it, from one [`Budget`].
//!
//! The budget has two pools, so that no reader can wait while holding what another waits
//! for: stored bytes come from the *fetch* pool (an eighth of the budget), bodies and their
//! parse from the *decode* pool (the rest). A reader holds at most one reservation from each,
//! takes the fetch one first, and never waits for more of a pool while holding some of it:
//! to grow, it gives back what it holds and waits for the larger amount. Readers in the
//! decode pool wait for nothing, so every wait ends.
//!
//! An object that needs more than a whole pool waits for the pool to empty and then has it
//! to itself; the decoder then reads its records one at a time, and refuses what even that
//! cannot fit (see [`crate::decode::Allowance`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget: fits a 4 GB task or machine with room for the detections' own work.
pub const DEFAULT_BUDGET: usize = 2 << 30;
/// The default budget, as the flags spell it.
pub const DEFAULT_BUDGET_TEXT: &str = "2GiB";

/// Reservations are made in units of this many bytes (a semaphore counts in `u32`s).
const UNIT: usize = 1024;

/// A budget of bytes shared by every reader; cheap to clone.
#[derive(Clone)]
pub struct Budget {
    fetch: Arc<Pool>,
    decode: Arc<Pool>,
    total: usize,
}

struct Pool {
    permits: Arc<Semaphore>,
    /// The pool's size, in units.
    units: u32,
    /// Bytes reserved now and at most so far, across both pools.
    in_use: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Pool {
    fn new(bytes: usize, in_use: &Arc<AtomicUsize>, peak: &Arc<AtomicUsize>) -> Self {
        let units = (bytes / UNIT).clamp(1, u32::MAX as usize) as u32;
        Self {
            permits: Arc::new(Semaphore::new(units as usize)),
            units,
            in_use: in_use.clone(),
            peak: peak.clone(),
        }
    }

    fn units_for(&self, bytes: usize) -> u32 {
        (bytes.div_ceil(UNIT).max(1)).min(self.units as usize) as u32
    }

    fn granted(&self, permit: OwnedSemaphorePermit, units: u32) -> Reservation {
        let bytes = units as usize * UNIT;
        let now = self.in_use.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Reservation {
            _permit: permit,
            bytes,
            in_use: self.in_use.clone(),
        }
    }

    async fn reserve(&self, bytes: usize) -> Reservation {
        let units = self.units_for(bytes);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(units)
            .await
            .expect("the budget's semaphores are never closed");
        self.granted(permit, units)
    }

    fn reserve_blocking(&self, bytes: usize) -> Reservation {
        futures::executor::block_on(self.reserve(bytes))
    }
}

/// Bytes reserved from a [`Budget`], given back when dropped.
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    in_use: Arc<AtomicUsize>,
}

impl Reservation {
    /// Bytes reserved (rounded up to whole kibibytes, at most the pool's size).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_use.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reservation({} bytes)", self.bytes)
    }
}

impl Budget {
    /// A budget of `total` bytes: an eighth for stored bytes, the rest for bodies and parsing.
    pub fn new(total: usize) -> Self {
        let total = total.max(16 * UNIT);
        let in_use = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let fetch = total / 8;
        Self {
            fetch: Arc::new(Pool::new(fetch, &in_use, &peak)),
            decode: Arc::new(Pool::new(total - fetch, &in_use, &peak)),
            total,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The most one object's body and parse can be given.
    pub fn decode_ceiling(&self) -> usize {
        self.decode.units as usize * UNIT
    }

    /// The most one object's stored bytes can be given.
    pub fn fetch_ceiling(&self) -> usize {
        self.fetch.units as usize * UNIT
    }

    /// Waits for `bytes` of stored-object room (at most [`fetch_ceiling`](Self::fetch_ceiling)).
    pub async fn reserve_fetch(&self, bytes: usize) -> Reservation {
        self.fetch.reserve(bytes).await
    }

    /// [`reserve_fetch`](Self::reserve_fetch) for threads outside an async runtime.
    pub fn reserve_fetch_blocking(&self, bytes: usize) -> Reservation {
        self.fetch.reserve_blocking(bytes)
    }

    /// Waits for `bytes` of body-and-parse room (at most
    /// [`decode_ceiling`](Self::decode_ceiling)), on the calling thread.
    pub fn reserve_decode_blocking(&self, bytes: usize) -> Reservation {
        self.decode.reserve_blocking(bytes)
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.fetch.in_use.load(Ordering::Relaxed)
    }

    /// The most bytes reserved at once so far.
    pub fn peak(&self) -> usize {
        self.fetch.peak.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("total", &self.total)
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// The most memory the process has had resident (Linux's `VmHWM`), in bytes; `None` where
/// the system does not say.
pub fn peak_resident() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A decoder's [`Allowance`](crate::decode::Allowance) drawn from a budget's decode pool.
pub struct DecodeAllowance<'a> {
    budget: &'a Budget,
    held: Option<Reservation>,
}

impl<'a> DecodeAllowance<'a> {
    /// Nothing held yet: the decoder asks for what the object needs.
    pub fn new(budget: &'a Budget) -> Self {
        Self { budget, held: None }
    }
}

impl crate::decode::Allowance for DecodeAllowance<'_> {
    fn granted(&self) -> usize {
        self.held.as_ref().map_or(0, Reservation::bytes)
    }

    fn regrant(&mut self, bytes: usize) -> usize {
        // Give back first, then wait: never wait while holding part of the pool.
        self.held = None;
        let held = self.budget.reserve_decode_blocking(bytes);
        let granted = held.bytes();
        self.held = Some(held);
        granted
    }

    fn ceiling(&self) -> usize {
        self.budget.decode_ceiling()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Allowance;

    #[test]
    fn reservations_count_and_give_back() {
        let budget = Budget::new(8 << 20);
        assert_eq!(budget.fetch_ceiling(), 1 << 20);
        assert_eq!(budget.decode_ceiling(), 7 << 20);
        let a = budget.reserve_fetch_blocking(1000);
        assert_eq!(a.bytes(), 1024);
        let b = budget.reserve_decode_blocking(100 << 20);
        assert_eq!(b.bytes(), 7 << 20, "capped at the pool");
        assert_eq!(budget.in_use(), 1024 + (7 << 20));
        drop(b);
        drop(a);
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), 1024 + (7 << 20));
    }

    #[test]
    fn a_reader_waits_until_another_gives_back() {
        let budget = Budget::new(8 << 20);
        let first = budget.reserve_decode_blocking(5 << 20);
        let (sender, received) = std::sync::mpsc::channel();
        let other = budget.clone();
        let waiter = std::thread::spawn(move || {
            let second = other.reserve_decode_blocking(5 << 20);
            sender.send(second.bytes()).unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            received.try_recv().is_err(),
            "granted while the pool was short"
        );
        drop(first);
        assert_eq!(
            received
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap(),
            5 << 20
        );
        waiter.join().unwrap();
        assert!(budget.peak() <= budget.total());
    }

    #[test]
    fn growing_gives_back_before_waiting() {
        let budget = Budget::new(8 << 20);
        let mut a = DecodeAllowance::new(&budget);
        let mut b = DecodeAllowance::new(&budget);
        a.regrant(4 << 20);
        b.regrant(3 << 20);
        // `a` wants the whole pool: it waits for `b` only, not for itself.
        std::thread::scope(|scope| {
            scope.spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                drop(b);
            });
            assert_eq!(a.regrant(7 << 20), 7 << 20);
        });
        assert!(budget.peak() <= budget.decode_ceiling() + budget.fetch_ceiling());
    }
}
