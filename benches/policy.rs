//! Cached `Policy::decide` against an uncached casbin `enforce`, on the demo agreement.
//! Run: `cargo bench --bench policy -- --quick`.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use partnergate::policy::{Policy, ScopeSet};

fn bench(c: &mut Criterion) {
    let policy = Policy::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
        .expect("demo policies load");
    let roles = ["trajectgezel", "brugfiguur"]
        .iter()
        .map(|r| policy.role(r).unwrap())
        .collect();
    let purpose = policy.purpose("trajectory_guidance").unwrap();
    let consents = ScopeSet::of(policy.scope("health_sharing").unwrap());
    let _warm = policy.decide(roles, purpose);

    let mut g = c.benchmark_group("policy");
    // What the API does per request: one decision, then the readable category set.
    g.bench_function("decide_cached+readable", |b| {
        b.iter(|| {
            let d = policy.decide(black_box(roles), black_box(purpose));
            black_box(d.readable(black_box(consents)))
        })
    });
    // One casbin question (one role, one category, one action) without any cache.
    g.bench_function("casbin_enforce_uncached_single", |b| {
        b.iter(|| {
            policy
                .enforce_uncached(
                    black_box("brugfiguur"),
                    black_box("trajectory_guidance"),
                    black_box("health"),
                    black_box("read"),
                    black_box("consent:health_sharing"),
                )
                .unwrap()
        })
    });
    // The same answer as the cached decision, from casbin: 2 roles × 9 categories × 2
    // conditions (always, the consent in force).
    let cats: Vec<String> = policy
        .agreement()
        .categories
        .iter()
        .map(|c| c.id.value.clone())
        .collect();
    g.bench_function("casbin_enforce_uncached_full_decision", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for role in ["trajectgezel", "brugfiguur"] {
                for cat in &cats {
                    for cond in ["always", "consent:health_sharing"] {
                        if policy
                            .enforce_uncached(role, "trajectory_guidance", cat, "read", cond)
                            .unwrap()
                        {
                            n += 1;
                        }
                    }
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
