//! Definitions benchmarks (results in BENCHMARKS.md, section "Definitions").
//!
//! `cargo bench -p akis-engine --bench definitions`
//!
//! - `load_and_validate_default_set`: parse + validate + compile every shipped file.
//! - `guard_eval_cached_ast`: one guard call on the compiled (cached) AST, on the calling
//!   thread; the context map is built once, as the engine does per move.
//! - `guard_context_build`: building that context from JSON (card + customer + user).
//! - `guard_eval_async_hop`: the same guard through `guard_async`, i.e. including the hop
//!   to tokio's blocking pool and back; the difference to the sync figure is the hop.

use std::hint::black_box;
use std::sync::Arc;

use akis_engine::definitions::{Definitions, SourceSet};
use akis_engine::rules::{GuardDecision, RuleContext, RuleRef};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn context() -> RuleContext {
    RuleContext::new()
        .with_json(
            "card",
            &json!({"id": "c1", "stage": "gorusuluyor", "appointment_at": "2026-12-01T10:00:00+03:00",
                    "owners": ["u1"], "source": "meta_lead_ad"}),
        )
        .with_json(
            "customer",
            &json!({"id": "k1", "name": "Ayşe Yılmaz", "phone": "+905321234567", "source": "meta_lead_ad",
                    "budget": 2500000.0, "tags": ["villa"]}),
        )
        .with_json("transition", &json!({"from": "gorusuluyor", "to": "randevu"}))
        .with_json("user", &json!({"id": "u1", "roles": ["sales"]}))
}

fn benches(c: &mut Criterion) {
    let sources = SourceSet::embedded();
    c.bench_function("load_and_validate_default_set", |b| {
        b.iter(|| {
            let report = Definitions::load(black_box(sources.clone()));
            assert!(report.definitions.is_some());
        })
    });

    let defs = Definitions::load(sources)
        .definitions
        .expect("shipped set loads");
    let rules = Arc::clone(&defs.rules);
    let guard = RuleRef::parse("guards.rhai#randevu_icin_tarih_gerekli").expect("rule ref");
    let ctx = context();
    assert_eq!(rules.guard(&guard, &ctx).unwrap(), GuardDecision::Allow);

    c.bench_function("guard_eval_cached_ast", |b| {
        b.iter(|| rules.guard(black_box(&guard), black_box(&ctx)).unwrap())
    });

    c.bench_function("guard_context_build", |b| b.iter(|| black_box(context())));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_function("guard_eval_async_hop", |b| {
        b.iter(|| {
            runtime.block_on(async { rules.guard_async(guard.clone(), ctx.clone()).await.unwrap() })
        })
    });
}

criterion_group!(definitions, benches);
criterion_main!(definitions);
