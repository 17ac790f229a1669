//! The models: a reader never sees a value freed, a writer inside a read section never waits
//! for itself, and the bounded queue's counters add up whatever the interleaving.

use loom::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use crate::{
    queue::{BoundedQueue, Delivery, OverflowPolicy},
    sync::{IrqSpinLock, rcu::RcuArray},
};

/// A published value that records its own destruction.
struct Tracked {
    value: u64,
    freed: Arc<AtomicBool>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::SeqCst);
    }
}

fn tracked(value: u64) -> (Box<Tracked>, Arc<AtomicBool>) {
    let freed = Arc::new(AtomicBool::new(false));
    (Box::new(Tracked { value, freed: freed.clone() }), freed)
}

/// Another CPU reading cell 0 once: whatever it finds must not have been freed under it.
fn spawn_reader(array: &Arc<RcuArray<Tracked, 1>>) -> thread::JoinHandle<()> {
    let array = array.clone();
    thread::spawn(move || {
        array.read(1, 0, |value| {
            if let Some(value) = value {
                assert!(!value.freed.load(Ordering::SeqCst), "read after free");
                assert!(value.value == 1 || value.value == 2);
            }
        });
    })
}

/// Whatever the interleaving, a reader holding a value (inside its section) never finds it
/// freed: the writer's grace period waits for it.
#[test]
fn a_reader_never_sees_its_value_freed() {
    loom::model(|| {
        let array: Arc<RcuArray<Tracked, 1>> = Arc::new(RcuArray::new());
        let (first, _) = tracked(1);
        drop(array.replace(0, Some(first)));
        let reader = spawn_reader(&array);
        let (second, _) = tracked(2);
        let mut retired = array.replace(0, Some(second)).expect("the first value");
        assert!(array.synchronize(0), "the writer is outside any section");
        assert!(retired.try_reclaim(&array), "a grace period passed");
        reader.join().expect("reader");
    });
}

/// A reclaim that finds a reader still inside hands the value back instead of freeing it.
#[test]
fn reclaim_never_frees_under_a_reader() {
    loom::model(|| {
        let array: Arc<RcuArray<Tracked, 1>> = Arc::new(RcuArray::new());
        let (first, first_freed) = tracked(1);
        drop(array.replace(0, Some(first)));
        let reader = spawn_reader(&array);
        let mut retired = array.replace(0, None).expect("the first value");
        // Poll like the idle task does, never waiting.
        while !retired.try_reclaim(&array) {
            thread::yield_now();
        }
        assert!(first_freed.load(Ordering::SeqCst));
        reader.join().expect("reader");
    });
}

/// A writer inside a read section of its own CPU (a handler that drops a subscription) cannot
/// wait for the grace period, and its retired value stays until the section ends.
#[test]
fn a_writer_inside_its_own_section_defers() {
    loom::model(|| {
        let array: RcuArray<Tracked, 1> = RcuArray::new();
        let (first, first_freed) = tracked(1);
        drop(array.replace(0, Some(first)));
        let mut retired = array.read(0, 0, |_| {
            let mut retired = array.replace(0, None).expect("the first value");
            assert!(!array.synchronize(0), "refuses to wait for itself");
            assert!(!retired.try_reclaim(&array), "still inside a section");
            retired
        });
        assert!(!first_freed.load(Ordering::SeqCst));
        assert!(retired.try_reclaim(&array), "the section has ended");
        assert!(first_freed.load(Ordering::SeqCst));
    });
}

/// The masked lock excludes: concurrent read-modify-writes under it lose nothing.
#[test]
fn the_lock_excludes() {
    loom::model(|| {
        let lock = Arc::new(IrqSpinLock::new(0u64));
        let other = {
            let lock = lock.clone();
            thread::spawn(move || *lock.lock() += 1)
        };
        *lock.lock() += 1;
        other.join().expect("other CPU");
        assert_eq!(*lock.lock(), 2);
    });
}

/// Two CPUs push into a drop-oldest queue of one slot while a third pops: every push is
/// delivered or reported lost, exactly once, and the counters always add up.
#[test]
fn queue_counters_add_up_under_concurrent_pushes_and_pops() {
    loom::model(|| {
        let queue = Arc::new(BoundedQueue::new("model", 1, OverflowPolicy::DropOldest));
        let producers: Vec<_> = [10u64, 20]
            .into_iter()
            .map(|item| {
                let queue = queue.clone();
                thread::spawn(move || {
                    queue.push(item);
                })
            })
            .collect();
        let mut consumed = 0;
        for _ in 0..2 {
            match queue.pop() {
                Some(Delivery::Item(_)) => consumed += 1,
                Some(Delivery::Lost { count }) => consumed += count,
                None => {}
            }
            let stats = queue.stats();
            assert_eq!(stats.enqueued, stats.delivered + stats.dropped + stats.depth, "{stats:?}");
            assert!(stats.depth <= 1);
        }
        for producer in producers {
            producer.join().expect("producer");
        }
        while let Some(delivery) = queue.pop() {
            match delivery {
                Delivery::Item(_) => consumed += 1,
                Delivery::Lost { count } => consumed += count,
            }
        }
        let stats = queue.stats();
        assert_eq!(stats.enqueued, 2);
        assert_eq!(consumed, 2, "delivered or reported lost, exactly once: {stats:?}");
    });
}
