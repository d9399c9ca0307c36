//! The scripts of the README's two commands: a node given in `BITCOIND` is the one used, a
//! `DATABASE_URL` that does not authenticate is not taken, and `scripts/up` names what it lacks
//! before it starts anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use test_support::workspace_root;

fn script(path: &str) -> String {
    workspace_root().join(path).display().to_string()
}

#[test]
fn a_bitcoind_given_in_the_environment_is_the_one_used() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("bitcoind");
    std::fs::write(&fake, "#!/bin/sh\necho 'Bitcoin SV Daemon version v1.0.13'\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("bash")
        .arg(script("scripts/lib/install-bsv-node.sh"))
        .env("BITCOIND", &fake)
        .env("BSV_NODE_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), fake.display().to_string());
    assert!(!dir.path().join("cache").exists(), "nothing was downloaded");

    // Something that is not a node is refused, not silently replaced.
    let out = Command::new("bash")
        .arg(script("scripts/lib/install-bsv-node.sh"))
        .env("BITCOIND", dir.path().join("missing"))
        .env("BSV_NODE_CACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BITCOIND"));
}

#[test]
fn a_database_url_that_does_not_authenticate_is_not_taken() {
    // The server answers on this address, but it has no such role: pg_isready would call it ready.
    let answering = std::env::var("DATABASE_URL").unwrap_or_else(|_| test_support::admin_database_url());
    let (scheme, rest) = answering.split_once("://").unwrap();
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let wrong = format!("{scheme}://no_such_role_for_bsvmapi@{host_and_db}");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && ensure_postgres && echo \"$DATABASE_URL\"",
            script("scripts/lib/ensure-postgres.sh")
        ))
        .env("DATABASE_URL", &wrong)
        .env("PG_LOCAL_URL", &answering)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), answering, "{stderr}");
    assert!(stderr.contains("does not connect and authenticate"), "{stderr}");
}

#[test]
fn up_names_a_missing_curl_before_starting_anything() {
    // A PATH with the shell and the little the script needs before its check, and no curl (nor
    // apt-get, so it cannot install it).
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "id"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap();
        let path = String::from_utf8(found.stdout).unwrap();
        std::os::unix::fs::symlink(path.trim(), bin.path().join(tool)).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(bin.path().join("bash"))
        .arg(script("scripts/up"))
        .env_clear()
        .env("PATH", bin.path())
        .env("BSVMAPI_STATE", state.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("curl is needed"), "{stderr}");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0, "nothing was started");
}
