//! `sqlx::migrate!` embeds the migration folders and `include_dir!` the default definitions
//! (and the UI templates) at compile time: rebuild when any of them changes.
//!
//! It also builds the web UI's JavaScript bundle (`ui/`: our ES modules plus npm libraries) with
//! esbuild into `OUT_DIR`, where `engine/src/ui/assets.rs` embeds it.
//!
//! The Rust build never depends on Node.js: without `node`/`npm` (or when the npm step
//! fails, e.g. offline) this prints a warning and embeds no bundle; the UI pages then say
//! how to get it (`cd ui && npm ci`, then rebuild). `AKIS_SKIP_UI_BUILD=1` skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

const ENTRIES: [&str; 2] = ["app", "login"];

fn main() {
    for dir in ["../migrations", "../workflows", "../rules", "../templates"] {
        println!("cargo:rerun-if-changed={dir}");
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir"));
    let ui = manifest.join("../ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("out dir"));
    println!("cargo:rerun-if-changed={}", ui.join("src").display());
    println!(
        "cargo:rerun-if-changed={}",
        ui.join("package.json").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        ui.join("package-lock.json").display()
    );
    println!("cargo:rerun-if-env-changed=AKIS_SKIP_UI_BUILD");

    let built = if std::env::var_os("AKIS_SKIP_UI_BUILD").is_some() {
        Err("AKIS_SKIP_UI_BUILD is set".to_string())
    } else {
        build(&ui, &out)
    };
    let mut code = String::new();
    match &built {
        Ok(()) => {
            code.push_str("pub const BUILT: bool = true;\n");
            for entry in ENTRIES {
                let path = out.join(format!("{entry}.js"));
                code.push_str(&format!(
                    "pub static {}_JS: &[u8] = include_bytes!({:?});\n",
                    entry.to_uppercase(),
                    path.display().to_string()
                ));
            }
            code.push_str(&format!(
                "pub static STYLES_CSS: &[u8] = include_bytes!({:?});\n",
                out.join("styles.css").display().to_string()
            ));
        }
        Err(why) => {
            println!(
                "cargo:warning=web UI scripts not built ({why}); the UI pages will say how to build them (cd ui && npm ci)"
            );
            code.push_str("pub const BUILT: bool = false;\n");
            for entry in ENTRIES {
                code.push_str(&format!(
                    "pub static {}_JS: &[u8] = b\"\";\n",
                    entry.to_uppercase()
                ));
            }
            code.push_str("pub static STYLES_CSS: &[u8] = b\"\";\n");
        }
    }
    std::fs::write(out.join("ui_assets.rs"), code).expect("write ui_assets.rs");
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )),
        Err(e) => Err(format!("{what} could not start: {e}")),
    }
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build(ui: &Path, out: &Path) -> Result<(), String> {
    run(Command::new("node").arg("--version"), "node")?;
    // `npm ci` only when the installed packages are older than the lockfile.
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules/.package-lock.json");
    let stale = match (modified(&lock), modified(&installed)) {
        (Some(l), Some(i)) => l > i,
        _ => true,
    };
    if stale || !ui.join("node_modules/.bin/esbuild").exists() {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(ui),
            "npm ci",
        )?;
    }
    let mut esbuild = Command::new(ui.join("node_modules/.bin/esbuild"));
    esbuild.current_dir(ui);
    for entry in ENTRIES {
        esbuild.arg(format!("src/{entry}.js"));
    }
    // The stylesheet: `styles.css` and the screens' CSS files it `@import`s.
    esbuild.arg("src/styles.css");
    esbuild
        .args(["--bundle", "--format=esm", "--minify", "--target=es2020"])
        .arg(format!("--outdir={}", out.display()));
    run(&mut esbuild, "esbuild")
}
