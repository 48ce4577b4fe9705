//! Definitions: the shipped files load cleanly, broken files produce the expected
//! compiler-style diagnostics (golden files), and no input makes the loader panic.
//!
//! Golden cases live in `tests/fixtures/definitions/<case>/` (a complete small set plus
//! `expected.txt`). To regenerate after an intended change:
//! `UPDATE_GOLDEN=1 cargo test -p akis-engine --test definitions`, then review the diff.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use akis_engine::definitions::{Definitions, LoadReport, SourceSet, cli};
use akis_engine::rules::{DenyReason, GuardDecision, RuleContext, RuleRef};
use serde_json::json;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/definitions")
}

fn load_dir(dir: &Path) -> LoadReport {
    Definitions::load(SourceSet::from_dir(dir).expect("fixture readable"))
}

fn render(report: &LoadReport) -> String {
    report
        .diagnostics
        .iter()
        .map(|d| format!("{d}\n"))
        .collect()
}

fn golden(case: &str) {
    let dir = fixtures().join(case);
    let got = render(&load_dir(&dir));
    let expected_path = dir.join("expected.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert_eq!(
        got,
        expected,
        "diagnostics of `{case}` differ from {}",
        expected_path.display()
    );
}

macro_rules! golden_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            golden(stringify!($name));
        }
    )*};
}

mod golden {
    use super::golden;
    golden_tests!(
        valid,
        yaml_syntax_error,
        unknown_field,
        wrong_type,
        unknown_action,
        unknown_field_in_action,
        unknown_stage,
        rhai_syntax_error,
        missing_template,
        missing_rule_function,
        unreachable_stage,
        no_initial_stage,
        duplicate_id,
        bad_due_time,
        terminal_with_outgoing,
        unknown_role,
        unreferenced_rule_file,
        whatsapp_parameter_not_mapped,
        many_errors_in_one_run,
        invalid_slug,
        errors_in_several_files,
    );
}

#[test]
fn every_golden_case_has_an_expected_file_and_a_test() {
    let mut cases: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    for case in &cases {
        assert!(
            fixtures().join(case).join("expected.txt").is_file(),
            "{case} has no expected.txt"
        );
    }
    let source = include_str!("definitions.rs");
    for case in &cases {
        assert!(
            source.contains(&format!("        {case},\n")),
            "{case} is not listed in golden_tests!"
        );
    }
}

#[test]
fn broken_cases_report_errors_and_warnings_only_cases_still_load() {
    for case in ["unreachable_stage", "unreferenced_rule_file", "valid"] {
        let report = load_dir(&fixtures().join(case));
        assert!(!report.has_errors(), "{case}: {}", render(&report));
        assert!(report.definitions.is_some(), "{case}");
    }
    let report = load_dir(&fixtures().join("many_errors_in_one_run"));
    assert!(report.definitions.is_none());
    assert!(
        report.diagnostics.iter().filter(|d| d.is_error()).count() >= 3,
        "all errors of a run are reported: {}",
        render(&report)
    );
}

#[test]
fn every_shipped_file_loads_with_zero_errors_and_zero_warnings() {
    let report = load_dir(&repo_root());
    assert_eq!(render(&report), "", "shipped definitions have diagnostics");
    let defs = report.definitions.expect("loaded");
    let sources = SourceSet::from_dir(&repo_root()).unwrap();
    assert!(sources.files().any(|(p, _)| p.ends_with(".rhai")));
    assert_eq!(defs.version, sources.version());
    // The embedded copy is the same set.
    let embedded = Definitions::load(SourceSet::embedded());
    assert_eq!(render(&embedded), "");
}

#[test]
fn the_embedded_copy_matches_the_files_on_disk() {
    // include_dir cannot tell cargo to rebuild when a definition file changes; a stale
    // build fails here instead of shipping old defaults.
    assert!(
        SourceSet::embedded() == SourceSet::from_dir(&repo_root()).unwrap(),
        "the definitions embedded in the binary are stale: rebuild akis-engine \
         (e.g. `touch engine/src/definitions/source.rs`)"
    );
}

#[test]
fn the_shipped_sales_pipeline_has_the_specified_shape() {
    let defs = Definitions::load(SourceSet::embedded())
        .definitions
        .expect("loads");
    let sales = defs.pipeline_for_source("meta_lead_ad").expect("intake");
    let stages: Vec<&str> = sales.stages.iter().map(|s| s.id.as_str()).collect();
    let main: Vec<&str> = stages
        .iter()
        .copied()
        .filter(|s| {
            [
                "potansiyel",
                "gorusuluyor",
                "randevu",
                "kapora",
                "satis_tamamlandi",
            ]
            .contains(s)
        })
        .collect();
    assert_eq!(
        main,
        [
            "potansiyel",
            "gorusuluyor",
            "randevu",
            "kapora",
            "satis_tamamlandi"
        ]
    );
    assert_eq!(sales.initial_stage().unwrap().id.as_str(), "potansiyel");
    assert_eq!(sales.stage("gorusuluyor").unwrap().name.tr, "Görüşülüyor");
    for from in ["gorusuluyor", "randevu", "kapora"] {
        assert!(sales.transition(from, "takip_edilecek").is_some(), "{from}");
    }
    assert!(sales.stage("satis_tamamlandi").unwrap().terminal);
    let wo = defs.work_order("teslimat_kurulum").unwrap();
    assert!(wo.steps.len() >= 4);
    for role in ["admin", "manager", "sales", "operations"] {
        assert!(defs.role(role).is_some(), "{role}");
    }
    let reminders: Vec<&str> = defs.reminder_sets[0]
        .reminders
        .iter()
        .map(|r| r.due.text.as_str())
        .collect();
    assert!(reminders.contains(&"appointment_at - 1d at 10:00"));
    assert!(defs.calendar.as_ref().unwrap().holidays.len() >= 20);
}

#[test]
fn the_shipped_rules_behave_as_documented() {
    let defs = Definitions::load(SourceSet::embedded())
        .definitions
        .expect("loads");
    let rules = &defs.rules;
    let guard = RuleRef::parse("guards.rhai#randevu_icin_tarih_gerekli").unwrap();
    let no_date = RuleContext::new().with_json("card", &json!({"stage": "gorusuluyor"}));
    match rules.guard(&guard, &no_date).unwrap() {
        GuardDecision::Deny(DenyReason::Text { tr, en }) => {
            assert!(tr.contains("randevu zamanını"));
            assert!(en.contains("appointment time"));
        }
        other => panic!("{other:?}"),
    }
    let with_date = RuleContext::new().with_json(
        "card",
        &json!({"appointment_at": "2026-12-01T10:00:00+03:00"}),
    );
    assert_eq!(
        rules.guard(&guard, &with_date).unwrap(),
        GuardDecision::Allow
    );

    let deposit = RuleRef::parse("guards.rhai#kapora_tutari_gerekli").unwrap();
    let zero = RuleContext::new().with_json("card", &json!({"deposit_amount": 0.0}));
    assert!(matches!(
        rules.guard(&deposit, &zero).unwrap(),
        GuardDecision::Deny(_)
    ));
    let paid = RuleContext::new().with_json("card", &json!({"deposit_amount": "50000"}));
    assert_eq!(rules.guard(&deposit, &paid).unwrap(), GuardDecision::Allow);

    let scoring = RuleRef::parse("scoring.rhai#lead_kalitesi").unwrap();
    let cold = rules
        .score(
            &scoring,
            &RuleContext::new().with_json("customer", &json!({"source": "meta_lead_ad"})),
        )
        .unwrap();
    let warm = rules
        .score(
            &scoring,
            &RuleContext::new().with_json(
                "customer",
                &json!({"source": "whatsapp", "budget": 6000000.0, "interested_in": "villa",
                        "message": "Merhaba, villa projeniz hakkında bilgi almak istiyorum"}),
            ),
        )
        .unwrap();
    assert!(
        warm.emotional > cold.emotional && warm.logical > cold.logical,
        "{cold:?} {warm:?}"
    );

    let assign = RuleRef::parse("assignment.rhai#kaynaga_gore_sirali").unwrap();
    let users = json!([
        {"id": "ayse", "roles": ["sales"], "teams": ["meta_lead_ad"]},
        {"id": "mehmet", "roles": ["sales"], "teams": ["meta_lead_ad"]},
        {"id": "zeynep", "roles": ["sales"], "teams": ["web_form"]},
        {"id": "ops", "roles": ["operations"], "teams": []}
    ]);
    let pick = |source: &str, counter: i64| {
        rules
            .assign(
                &assign,
                &RuleContext::new()
                    .with_json("users", &users)
                    .with_json("source", &json!(source))
                    .with_json("counter", &json!(counter)),
            )
            .unwrap()
    };
    assert_eq!(pick("meta_lead_ad", 0).as_deref(), Some("ayse"));
    assert_eq!(pick("meta_lead_ad", 1).as_deref(), Some("mehmet"));
    assert_eq!(pick("meta_lead_ad", 2).as_deref(), Some("ayse"));
    assert_eq!(pick("web_form", 7).as_deref(), Some("zeynep"));
    assert_eq!(
        pick("whatsapp", 2).as_deref(),
        Some("zeynep"),
        "no team: every rep in turn"
    );

    let no_show = RuleRef::parse("outcomes.rhai#gelmedi").unwrap();
    let d = rules
        .outcome(
            &no_show,
            &RuleContext::new().with_json("card", &json!({"stage": "randevu"})),
        )
        .unwrap();
    assert_eq!(d.move_to.as_deref(), Some("takip_edilecek"));
    let unsuitable = RuleRef::parse("outcomes.rhai#uygun_degil").unwrap();
    let d = rules
        .outcome(
            &unsuitable,
            &RuleContext::new().with_json("card", &json!({"stage": "kapora"})),
        )
        .unwrap();
    assert_eq!(d.move_to.as_deref(), Some("uygun_degil"));

    let text = defs
        .render_message(
            "kapora_alindi",
            "tr",
            minijinja::context! {
                customer => minijinja::context! { name => "Ayşe Yılmaz" },
                card => minijinja::context! { deposit_amount => 50000 },
                actor => minijinja::context! { name => "Mehmet" },
            },
        )
        .unwrap();
    assert_eq!(text, "Ayşe Yılmaz için 50000 TL kapora alındı (Mehmet).");
}

#[test]
fn the_server_falls_back_to_the_embedded_set_and_refuses_a_broken_folder() {
    let empty = tempfile::tempdir().unwrap();
    let (defs, warnings) = Definitions::load_for_server(empty.path()).expect("embedded set");
    assert!(warnings.is_empty());
    assert_eq!(defs.version, SourceSet::embedded().version());

    let errors = Definitions::load_for_server(&fixtures().join("unknown_stage")).unwrap_err();
    assert!(!errors.is_empty() && errors.iter().all(|d| d.is_error()));
    let (_, warnings) =
        Definitions::load_for_server(&fixtures().join("unreachable_stage")).unwrap();
    assert_eq!(warnings.len(), 1);
}

#[test]
fn check_exits_one_on_errors_and_zero_on_warnings_naming_the_file() {
    let dir = fixtures().join("unknown_stage");
    let (code, out) = cli::check_report(&dir);
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        out.contains(&format!(
            "{}:18:13: error: unknown stage `randvu`",
            dir.join("workflows/sales.yaml").display()
        )),
        "{out}"
    );
    let (code, out) = cli::check_report(&fixtures().join("unreachable_stage"));
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("warning:"));
    let (code, _) = cli::check_report(Path::new("/nonexistent/akis"));
    assert_eq!(code, ExitCode::FAILURE);
}

#[test]
fn the_schema_comes_from_the_types_and_the_shipped_copy_is_current() {
    let schema = cli::schema();
    let value: serde_json::Value = serde_json::from_str(&schema).expect("valid JSON");
    assert_eq!(value["additionalProperties"], json!(false));
    for key in [
        "pipelines",
        "work_orders",
        "reminder_sets",
        "roles",
        "intake",
    ] {
        assert!(value["properties"].get(key).is_some(), "{key}");
    }
    assert!(schema.contains("whatsapp_template") && schema.contains("conversion_event"));
    let shipped_path = repo_root().join("workflows/akis.schema.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&shipped_path, format!("{schema}\n")).expect("write schema");
    }
    let shipped = std::fs::read_to_string(&shipped_path).unwrap_or_default();
    assert!(
        shipped.trim_end() == schema.trim_end(),
        "workflows/akis.schema.json is stale: run `cargo run -- schema > workflows/akis.schema.json`"
    );
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn base() -> SourceSet {
        SourceSet::from_dir(&fixtures().join("valid")).unwrap()
    }

    /// YAML-looking text built from the keys and values the model uses.
    fn yamlish() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "pipelines:",
            "stages:",
            "transitions:",
            "- id: a",
            "id: b",
            "name: {tr: x, en: y}",
            "initial: true",
            "terminal: true",
            "from: a",
            "to: b",
            "actions:",
            "- notify: {to: [owners], message: m}",
            "- follow_up: {title: {tr: a, en: b}, due: \"+2d\"}",
            "due: \"appointment_at - 1d at 10:00\"",
            "guard: g.rhai#f",
            "roles:",
            "scope: own",
            "intake: {default_pipeline: a}",
            "&a x",
            "*a",
            "[",
            "]",
            "{",
            "}",
            ":",
            "- ",
            "  ",
            "\n",
            "'",
            "\"",
            "? ",
            "!!str",
            "%YAML 1.2",
            "---",
            "...",
            "|",
            ">",
            "work_orders:",
            "steps:",
            "depends_on: [a]",
            "reminder_sets:",
            "trigger: {field_set: x}",
            "calendar: {business_hours: {days: [mon], opens: '09:00', closes: '08:00'}}",
            "ğüşıöç",
            "\t",
        ]);
        prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_in_any_file_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..4) {
            let mut set = base();
            let path = ["workflows/sales.yaml", "workflows/extra.yml", "rules/guards.rhai", "templates/messages/bilgi.tr.txt"][which];
            set.insert(path, bytes);
            let report = Definitions::load(set);
            for d in &report.diagnostics {
                prop_assert!(d.line >= 1 && d.col >= 1, "{d}");
            }
        }

        #[test]
        fn arbitrary_yaml_never_panics(text in yamlish()) {
            let mut set = base();
            set.insert("workflows/extra.yaml", text.clone());
            let _ = Definitions::load(set.clone());
            set.insert("workflows/sales.yaml", text);
            let _ = Definitions::load(set);
        }

        #[test]
        fn arbitrary_due_expressions_never_panic(text in "\\PC{0,40}") {
            let _ = akis_engine::definitions::due::parse(&text);
            let _ = akis_engine::definitions::due::parse_duration(&text);
        }
    }
}
