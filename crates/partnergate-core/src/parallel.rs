//! CPU-bound work spread over the cores: sync pages decrypt on every core.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Applies `f` to every item on up to one thread per core and returns the results in the
/// items' order. Fewer than `min_chunk` items per thread are not worth a thread: they run here.
pub fn map_in_order<T: Send, R: Send>(
    items: Vec<T>,
    min_chunk: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = items.len().div_ceil(cores).max(min_chunk.max(1));
    if items.len() <= per {
        return items.into_iter().map(f).collect();
    }
    let mut chunks = Vec::new();
    let mut rest = items;
    while rest.len() > per {
        let tail = rest.split_off(per);
        chunks.push(rest);
        rest = tail;
    }
    chunks.push(rest);
    let f = &f;
    std::thread::scope(|scope| {
        let mut chunks = chunks.into_iter();
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(f).collect::<Vec<_>>()))
            .collect();
        // This thread takes the first chunk instead of waiting idle.
        let mut out: Vec<R> = first.into_iter().map(f).collect();
        for other in others {
            out.extend(
                other
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        out
    })
}

/// Runs CPU-bound `work` from async code without stalling the other tasks of this worker
/// thread: on a multi-threaded runtime the worker hands its tasks to another thread first.
/// On a current-thread runtime (tests) or outside tokio, it simply runs.
pub fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_in_order_keeps_the_order_of_items_across_threads() {
        let items: Vec<u32> = (0..10_000).collect();
        let out = map_in_order(items, 10, |i| i * 2);
        assert_eq!(out, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn map_in_order_uses_more_than_one_thread_for_large_inputs() {
        let threads = std::sync::Mutex::new(std::collections::HashSet::new());
        map_in_order((0..4096).collect(), 1, |_: u32| {
            threads.lock().unwrap().insert(std::thread::current().id());
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads.into_inner().unwrap().len(), cores.min(4096));
    }

    #[test]
    fn map_in_order_handles_empty_and_small_inputs_inline() {
        assert!(map_in_order(Vec::<u8>::new(), 8, |i| i).is_empty());
        let here = std::thread::current().id();
        let ids = map_in_order(vec![1, 2, 3], 8, |_| std::thread::current().id());
        assert!(ids.iter().all(|id| *id == here));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_runs_on_a_multi_threaded_runtime() {
        assert_eq!(blocking(|| 7), 7);
    }

    #[tokio::test]
    async fn blocking_runs_on_a_current_thread_runtime() {
        assert_eq!(blocking(|| 7), 7);
    }
}
