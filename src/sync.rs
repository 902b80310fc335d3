//! Locks that outlive a panic. Work on one object runs under `catch_unwind`; a thread that
//! panicked while holding a lock must not turn every later use of it into a second panic, so
//! a poisoned lock is taken as it stands (its data is a count or a list, whole at every step).

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, poisoned or not.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The value inside `mutex`, poisoned or not.
pub fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Reads `lock`, poisoned or not.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

/// Writes `lock`, poisoned or not.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_gives_its_data() {
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let mut g = held.lock().unwrap();
            g.push(2);
            panic!("while holding the lock");
        })
        .join();
        assert!(m.is_poisoned());
        lock(&m).push(3);
        let m = std::sync::Arc::into_inner(m).unwrap();
        assert_eq!(into_inner(m), vec![1, 2, 3]);

        let rw = std::sync::Arc::new(RwLock::new(0));
        let held = std::sync::Arc::clone(&rw);
        let _ = std::thread::spawn(move || {
            let _g = held.write().unwrap();
            panic!("while writing");
        })
        .join();
        *write(&rw) += 1;
        assert_eq!(*read(&rw), 1);
    }
}
