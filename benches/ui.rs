//! Browser benchmark of the web UI: a board holding 10,000 cards, opened in Chromium
//! (`tests/ui/bench.mjs`, playwright-core): time to first contentful paint, to interactive,
//! for a scrolled column's next page, and from a click on a card to its CustomerViewer.
//! Goals: interactive in under 1 s; every action on screen within 100 ms (UI.md).
//!
//! ```text
//! cargo bench --bench ui -- [--cards 10000] [--runs 7]
//! ```
//! Seeds a fresh SQLite database through the real intake and transitions (the demo's
//! generator), serves it in-process and drives the system Chromium (`/usr/bin/chromium`, or
//! `AKIS_TEST_CHROMIUM`). Needs Node.js, `npm ci` in `tests/ui` and the UI bundle built.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use akis_engine::config::{Config, DatabaseUrl};
use serde_json::Value;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> anyhow::Result<()> {
    let cards = arg("--cards", 10_000);
    let runs = arg("--runs", 7);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("AKIS_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    anyhow::ensure!(
        akis_engine::ui::assets::BUILT,
        "the UI bundle is not built (cd ui && npm ci)"
    );
    anyhow::ensure!(chromium.exists(), "no Chromium at {}", chromium.display());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let dir = tempfile::tempdir()?;
        let config = Config {
            database_url: DatabaseUrl::new(format!("sqlite:{}", dir.path().join("bench.db").display())),
            listen: "127.0.0.1:0".parse()?,
            definitions: root.clone(),
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        let app = akis_engine::App::build(config).await?;
        let state = app.state().clone();
        let started = Instant::now();
        // The demo's sales reps first, so the assignment rule spreads the cards over them;
        // then the cards; then the rest of the demo users (`seed` adds no customers once
        // there are some).
        let hash = akis_engine::auth::hash_password(akis_engine::demo::ADMIN_PASSWORD)
            .await
            .map_err(|e| anyhow::anyhow!("hash: {e}"))?;
        for (email, name) in [("ayse@akis.local", "Ayşe Yılmaz"), ("mehmet@akis.local", "Mehmet Demir")] {
            let mut tx = state.db.begin().await?;
            akis_engine::users::store::insert(
                &mut tx,
                akis_engine::users::store::NewUser {
                    email: akis_engine::types::Email::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?,
                    name: name.into(),
                    role: "sales".into(),
                    team_id: None,
                    password_hash: hash.clone(),
                    locale: "tr".into(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("user: {e:?}"))?;
            tx.commit().await?;
        }
        akis_engine::demo::seed_customers(&state.db, &state.defs(), cards).await?;
        akis_engine::demo::seed(&state.db, &state.defs()).await?;
        eprintln!("seeded {cards} customers in {:.1} s", started.elapsed().as_secs_f64());
        let base = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        let script = root.join("tests/ui/bench.mjs");
        let output = tokio::task::spawn_blocking(move || {
            Command::new("node")
                .arg(script)
                .arg(&base)
                .arg("admin@akis.local")
                .arg(akis_engine::demo::ADMIN_PASSWORD)
                .arg(runs.to_string())
                .arg(chromium)
                .output()
        })
        .await??;
        let _ = tx.send(());
        let _ = server.await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(output.status.success(), "bench.mjs failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let rows: Vec<Value> = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let col = |k: &str| median(rows.iter().filter_map(|r| r[k].as_f64()).collect());
        println!("board with {} open cards, {} in the DOM at first render, {runs} runs (median; first run is a cold start):", col("cards_on_board"), col("cards_in_dom"));
        println!("  HTML received            {:>7.0} ms", col("response_end_ms"));
        println!("  first contentful paint   {:>7.0} ms", col("first_contentful_paint_ms"));
        println!("  interactive              {:>7.0} ms", col("interactive_ms"));
        println!("  next page of a column    {:>7.0} ms (scroll to its end → cards shown)", col("next_page_ms"));
        println!("  open a customer          {:>7.0} ms (click a card → CustomerViewer rendered, as Playwright sees it)", col("viewer_open_ms"));
        println!("    in the page            {:>7.0} ms (click handler → every section rendered; the panel shows at once)", col("viewer_in_page_ms"));
        println!("  HTML size                {:>7.0} KB", col("html_bytes") / 1024.0);
        for r in &rows {
            println!("  {r}");
        }
        Ok(())
    })
}
