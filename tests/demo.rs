//! `demo --once` end to end, as CI and a newcomer run it: the binary exits 0 within a
//! minute and its summary shows every pairing linked, creates on both sides, the scripted
//! conflict and the pending action.

use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_webcrm-chargebee-sync");

const PAIRINGS: [&str; 6] = [
    "persons_customers",
    "users_customers",
    "organisations_business_entities",
    "opportunities_orders",
    "quotationlines_orders",
    "products_items",
];

/// A summary row: links, created in Chargebee, created in webCRM, conflicts, pending, dead.
fn row(stdout: &str, pairing: &str) -> [u64; 6] {
    let line = stdout
        .lines()
        .skip_while(|l| !l.starts_with("== Summary"))
        .find(|l| l.split_whitespace().next() == Some(pairing))
        .unwrap_or_else(|| panic!("no summary row for {pairing}:\n{stdout}"));
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("not a number in {line:?}"))
        })
        .collect();
    numbers.try_into().unwrap_or_else(|_| panic!("{line:?}"))
}

#[test]
fn demo_once_plays_the_script_and_summarises() {
    let started = Instant::now();
    let output = Command::new(BIN)
        .args(["demo", "--once"])
        .env_remove("LISTEN_ADDR")
        .output()
        .expect("run the binary");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");

    for step in 1..=6 {
        assert!(stdout.contains(&format!("-- step {step}:")), "{stdout}");
    }
    for pairing in PAIRINGS {
        let [links, _, _, _, _, dead] = row(&stdout, pairing);
        assert!(links > 0, "{pairing} has no links:\n{stdout}");
        assert_eq!(dead, 0, "{pairing} has dead jobs:\n{stdout}");
    }
    // Records only one side had were created on the other, both ways.
    let [_, to_chargebee, to_webcrm, conflicts, _, _] = row(&stdout, "persons_customers");
    assert!(to_chargebee > 0 && to_webcrm > 0, "{stdout}");
    assert_eq!(conflicts, 1, "{stdout}");
    let [_, to_chargebee, to_webcrm, _, _, _] = row(&stdout, "opportunities_orders");
    assert!(to_chargebee > 0 && to_webcrm > 0, "{stdout}");
    let [_, _, _, _, pending, _] = row(&stdout, "organisations_business_entities");
    assert_eq!(pending, 1, "{stdout}");

    assert!(stdout.contains("conflicts (1):"), "{stdout}");
    assert!(
        stdout
            .contains("field first_name: webCRM \"Jon\" vs Chargebee \"Jonas B.\"; chargebee won"),
        "{stdout}"
    );
    assert!(stdout.contains("pending actions (1):"), "{stdout}");
    assert!(
        stdout.contains("name_change (open): rename business entity be_nordlys"),
        "{stdout}"
    );
    // The echo wrote nothing back.
    assert!(
        stdout.contains("1 Chargebee write(s) (the change itself), 0 webCRM write(s)"),
        "{stdout}"
    );
    // Where to look, with a ready command.
    assert!(
        stdout.contains("curl -s -H 'Authorization: Bearer "),
        "{stdout}"
    );
    assert!(stdout.contains("/metrics"), "{stdout}");
    assert!(
        stdout.contains("/console  (sign in with the token"),
        "{stdout}"
    );
}

#[test]
fn demo_names_a_bad_database_url_and_exits_non_zero() {
    let output = Command::new(BIN)
        .args(["demo", "--once", "--database-url", "mysql://nowhere/db"])
        .output()
        .expect("run the binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
