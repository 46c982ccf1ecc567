//! Executor and mapping benchmarks (see `docs/performance.md`, `## Engine`).
//!
//! - `execution/order_10_modules`: one execution of `benches/executor.yaml` (webhook
//!   trigger, set_variables, a router with two routes, an iterator over 10 items with a
//!   set_variables per item calling helpers, an array aggregator, text mappings; 10 modules,
//!   18 operations) from the prepared trigger bundle in `benches/executor.input.json`.
//! - `execution/trigger_only`: the baseline, one execution of a scenario that is only its
//!   trigger (the fixed cost of an execution: id, record, runtime entry).
//! - `render/*`: one mapping render: a single path (the baseline of mappings), a text with
//!   a helper call, and a text with three paths.
//!
//! Executions run on a tokio current-thread runtime, one `block_on` per iteration.
//!
//! ```text
//! cargo bench -p weft-engine --bench executor -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Value};
use weft_engine::exec::{Executor, Status};
use weft_engine::template::{Scope, Templates};
use weft_engine::validate::{load_file, load_str, LoadOptions};
use weft_engine::Registry;

fn registry() -> Registry {
    match Registry::new([weft_engine::builtin::modules()], []) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn bench_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(name)
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("{e}"),
    }
}

fn executions(c: &mut Criterion) {
    let registry = registry();
    let rt = runtime();

    let scenario = match load_file(&bench_file("executor.yaml"), &registry) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let payload: Value = match std::fs::read_to_string(bench_file("executor.input.json"))
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => panic!("executor.input.json: {e}"),
    };
    let executor = Executor::new(&scenario);
    // Check once that the scenario does what the figures claim.
    let record = rt.block_on(executor.run(payload.clone()));
    assert_eq!(record.status, Status::Success, "{record:#?}");
    assert_eq!(record.operations, 18, "{record:#?}");

    let trigger_only = match load_str(
        "trigger-only.yaml",
        "name: trigger-only\nflow:\n  - { id: 1, module: webhook.custom, params: { name: orders } }\n",
        &registry,
        &LoadOptions::default(),
    ) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let baseline = Executor::new(&trigger_only);

    let mut group = c.benchmark_group("execution");
    group.bench_function("trigger_only", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| rt.block_on(baseline.run(black_box(p))),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("order_10_modules", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| rt.block_on(executor.run(black_box(p))),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn renders(c: &mut Criterion) {
    let mut templates = Templates::new();
    let mut scope = Scope::new();
    scope.set(
        "1",
        json!({
            "order": "A-1001",
            "customer": {"first_name": "ada", "phone_number": "+15550100"},
            "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}],
        }),
    );
    scope.set("2", json!({"customer": "Ada", "total": 149.9}));
    let compile = |templates: &mut Templates, src: &str| match templates.compile(src) {
        Ok(t) => t,
        Err(e) => panic!("{src}: {e}"),
    };
    let cases = [
        ("single_path", "{{1.customer.phone_number}}"),
        (
            "text_with_helper",
            "Hi {{capitalize 1.customer.first_name}}, welcome!",
        ),
        (
            "text_three_paths",
            "Order {{1.order}} for {{2.customer}}: {{2.total}} EUR",
        ),
    ];
    let mut group = c.benchmark_group("render");
    for (name, src) in cases {
        let template = compile(&mut templates, src);
        group.bench_function(name, |b| {
            b.iter(|| templates.render(black_box(&template), black_box(&scope)));
        });
    }
    group.finish();
}

criterion_group!(benches, executions, renders);
criterion_main!(benches);
