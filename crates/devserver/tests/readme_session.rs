//! `scripts/dev.sh` serves the API, and the README's curl session (`scripts/demo.sh`) gives the
//! output the README shows (ids and times aside). Runs the real scripts: a throwaway PostgreSQL,
//! migrations, the dev server, curl; then Ctrl-C, after which the database directory is gone.

use std::{
    io::Read,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Times, request ids, cursors, invitation codes and random ids (users, invitations) differ on
/// every run. Ids become `<uuid-N>` in order of first appearance, so the session must still use
/// the same id in the same places.
fn normalize(text: &str) -> String {
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap();
    let request_id = regex::Regex::new(r#""request_id":"[^"]*""#).unwrap();
    let cursor = regex::Regex::new(r#""next_cursor":"[^"]*""#).unwrap();
    let code = regex::Regex::new(r"inv_[A-Za-z0-9_-]{43}").unwrap();
    let uuid = regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let text = time.replace_all(text, "<time>");
    let text = request_id.replace_all(&text, r#""request_id":"<id>""#);
    let text = code.replace_all(&text, "<code>");
    let mut seen: Vec<String> = Vec::new();
    let text = uuid.replace_all(&text, |c: &regex::Captures<'_>| {
        let id = c[0].to_string();
        let n = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
            seen.push(id);
            seen.len() - 1
        });
        format!("<uuid-{n}>")
    });
    cursor.replace_all(&text, r#""next_cursor":"<cursor>""#).trim().to_string()
}

/// The IAM stand-in's binary for `dev.sh --dsql`, so that no test builds anything:
/// `IAM_STANDIN_BIN` (scripts/test.sh builds every binary before the tests and hands it over),
/// else the one `cargo test --workspace` built beside this package's `devserver`.
fn iam_standin_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("IAM_STANDIN_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let beside = Path::new(env!("CARGO_BIN_EXE_devserver")).with_file_name("iam-standin");
    assert!(
        beside.is_file(),
        "no iam-standin binary at {}: run the tests with scripts/test.sh or `cargo test --workspace`, \
         or set IAM_STANDIN_BIN (tests do not build binaries)",
        beside.display()
    );
    beside
}

/// Creates, as alice, a tenant whose id has the first 12 hex digits of `tenant`'s (ids can be
/// chosen by clients); returns its id.
fn shares_prefix_with(tenant: &str, base: &str) -> String {
    let twin = format!("{}-4fff-bfff-ffffffffffff", &tenant[..13]);
    assert_ne!(twin, tenant);
    let token = Command::new(env!("CARGO_BIN_EXE_devserver"))
        .args(["token", "--sub", "alice"])
        .env("DEV_JWT_SECRET", "local-development-secret-not-for-production")
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap();
    let body = format!(r#"{{"name":"prefix twin","id":"{twin}"}}"#);
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &format!("{base}/api/tenants")])
        .args(["-H", &format!("Authorization: Bearer {}", token.trim()), "-H", "Content-Type: application/json"])
        .args(["-d", &body])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "creating the prefix twin");
    twin
}

fn readme_session() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("<!-- demo-session:start -->").expect("README has the demo session");
    let end = readme.find("<!-- demo-session:end -->").unwrap();
    let block = &readme[start..end];
    let body_start = block.find("```text\n").unwrap() + "```text\n".len();
    let body_end = block.rfind("```").unwrap();
    block[body_start..body_end].to_string()
}

#[test]
fn dev_script_serves_the_readme_session() {
    serves_the_readme_session(&[]);
}

/// `scripts/dev.sh --dsql`: the same session on the Aurora DSQL path (the DSQL schema and
/// statements, DSQL tokens through the IAM stand-in in DSQL mode).
#[test]
fn dev_script_serves_the_readme_session_on_the_dsql_path() {
    let out = serves_the_readme_session(&["--dsql"]);
    assert!(out.contains("Aurora DSQL path"), "{out}");
}

/// Runs `scripts/dev.sh` with `args` and the README's session against it; returns what dev.sh
/// printed.
fn serves_the_readme_session(args: &[&str]) -> String {
    // One at a time: dev.sh picks free ports by probing, and two at once could pick the same.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("state");
    let mut dev = Command::new("bash")
        .arg("scripts/dev.sh")
        .args(args)
        .env("DEV_STATE", &state)
        .current_dir(root())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("DEVSERVER_BIN", env!("CARGO_BIN_EXE_devserver"))
        .env("IAM_STANDIN_BIN", iam_standin_bin())
        .env_remove("DATABASE_URL")
        .env_remove("DEV_JWT_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = dev.id();
    let stop = || {
        let _ = Command::new("kill").args(["-INT", "--", &format!("-{pgid}")]).status();
    };

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let up = Command::new("curl")
            .args(["-sf", &format!("{base}/health")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        if up {
            break;
        }
        if Instant::now() > deadline || dev.try_wait().unwrap().is_some() {
            stop();
            panic!("scripts/dev.sh did not serve /health");
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // While dev.sh runs, psql.sh and migrate.sh find its database without any configuration.
    let script = |name: &str, args: &[&str]| {
        let out = Command::new("bash")
            .arg(format!("scripts/{name}"))
            .args(args)
            .current_dir(root())
            .env("DEV_STATE", &state)
            .env("DEVSERVER_BIN", env!("CARGO_BIN_EXE_devserver"))
            .env_remove("DATABASE_URL")
            .env_remove("DB_HOST")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let recorded = std::fs::read_to_string(&state).expect("dev.sh records its state");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the state holds passwords: readable by its owner only");
    let secrets: Vec<&str> = recorded
        .lines()
        .filter_map(|l| l.strip_prefix("DEV_ADMIN_PASSWORD=").or_else(|| l.strip_prefix("DEV_RUNTIME_PASSWORD=")))
        .collect();
    assert_eq!(secrets.len(), 2, "{recorded}");
    let (ok, psql) = script("psql.sh", &["-tA", "-c", "select current_user || ' ' || current_database()"]);
    assert!(ok && psql.trim() == "app_runtime app", "psql.sh against dev.sh: {psql}");
    let (ok, migrate) = script("migrate.sh", &[]);
    assert!(ok && migrate.contains("up to date"), "migrate.sh against dev.sh: {migrate}");
    for secret in &secrets {
        assert!(!psql.contains(secret) && !migrate.contains(secret), "no password in the scripts' output");
    }

    let demo = Command::new("bash")
        .arg("scripts/demo.sh")
        .arg(&base)
        .current_dir(root())
        .env("DEVSERVER_BIN", env!("CARGO_BIN_EXE_devserver"))
        .env_remove("DEV_JWT_SECRET")
        .output()
        .unwrap();
    if args.is_empty() {
        // And tenant.sh moves one of the demo's tenants to a database of its own and back.
        let (ok, listed) = script("tenant.sh", &["list"]);
        assert!(ok, "tenant.sh list: {listed}");
        let tenant = listed
            .lines()
            .find_map(|l| l.split_whitespace().next().filter(|w| uuid::Uuid::parse_str(w).is_ok()))
            .unwrap_or_else(|| panic!("the demo made a tenant: {listed}"));
        let tenant = tenant.to_string();
        let (ok, moved) = script("tenant.sh", &["move", &tenant, "--to", "dedicated"]);
        assert!(ok && moved.contains("moved to tenant-"), "tenant.sh move --to dedicated: {moved}");
        let (_, listed) = script("tenant.sh", &["list"]);
        let line = listed.lines().find(|l| l.starts_with(&tenant)).unwrap_or_default();
        assert!(line.contains("tenant-") && !line.contains("pooled"), "{listed}");
        // A tenant whose client-chosen id shares the first one's prefix gets a database of its
        // own (named from the whole id), and a move into the first one's database is refused.
        let prefix_twin = shares_prefix_with(&tenant, &base);
        let recorded_value = |key: &str| {
            recorded.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_default().to_string()
        };
        let victim_db = format!(
            "postgres://postgres:{}@127.0.0.1:{}/tenant_{}",
            recorded_value("DEV_ADMIN_PASSWORD"),
            recorded_value("DEV_PORT"),
            tenant.replace('-', "")
        );
        let (ok, refused) =
            script("tenant.sh", &["move", &prefix_twin, "--to", "dedicated", "--database-url", &victim_db]);
        assert!(!ok && refused.contains(&format!("already holds tenant {tenant}")), "{refused}");
        let (ok, own) = script("tenant.sh", &["move", &prefix_twin, "--to", "dedicated"]);
        assert!(ok && own.contains(&format!("moved to tenant-{}", prefix_twin.replace('-', ""))), "{own}");
        let (ok, _) = script("tenant.sh", &["move", &prefix_twin, "--to", "pooled"]);
        assert!(ok);
        // migrate.sh goes on to every dedicated database.
        let (ok, migrate) = script("migrate.sh", &[]);
        assert!(ok && migrate.matches("up to date").count() == 3 && migrate.contains("(tenant-"), "{migrate}");
        let (ok, back) = script("tenant.sh", &["move", &tenant, "--to", "pooled"]);
        assert!(ok && back.contains("moved to pooled"), "tenant.sh move --to pooled: {back}");
        for secret in &secrets {
            assert!(!moved.contains(secret) && !back.contains(secret), "no password in tenant.sh's output");
        }
    }
    // tenant.sh plan sets a tenant's plan, on either engine (one of the demo's tenants).
    let tenant = if args.is_empty() {
        let (_, listed) = script("tenant.sh", &["list"]);
        listed
            .lines()
            .find_map(|l| l.split_whitespace().next().filter(|w| uuid::Uuid::parse_str(w).is_ok()))
            .map(str::to_string)
    } else {
        // No row-level security on DSQL: the runtime role's psql.sh sees the tenants.
        let sql = "select id from tenants where deleted_at is null order by created_at limit 1";
        let (_, ids) = script("psql.sh", &["-tA", "-c", sql]);
        ids.lines().map(str::trim).find(|w| uuid::Uuid::parse_str(w).is_ok()).map(str::to_string)
    }
    .expect("the demo made a tenant");
    let (ok, set) = script("tenant.sh", &["plan", &tenant, "premium"]);
    assert!(ok && set.contains(&format!("tenant {tenant}: plan standard -> premium")), "tenant.sh plan: {set}");
    let (ok, again) = script("tenant.sh", &["plan", &tenant, "free"]);
    assert!(ok && again.contains("plan premium -> free"), "tenant.sh plan again: {again}");
    let (ok, refused) = script("tenant.sh", &["plan", &tenant, "gold"]);
    assert!(!ok && refused.contains("gold is not a plan of this deployment"), "{refused}");
    stop();
    let exit_deadline = Instant::now() + Duration::from_secs(30);
    while dev.try_wait().unwrap().is_none() {
        assert!(Instant::now() < exit_deadline, "dev.sh did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut dev_out = String::new();
    dev.stdout.take().unwrap().read_to_string(&mut dev_out).unwrap();

    assert!(demo.status.success(), "demo.sh failed: {}", String::from_utf8_lossy(&demo.stderr));
    let got = normalize(&String::from_utf8(demo.stdout).unwrap());
    let want = normalize(&readme_session());
    assert_eq!(got, want, "README's session differs from what scripts/demo.sh prints now");

    let data_dir = regex::Regex::new(r"data in (\S+), removed on exit").unwrap();
    let dir = data_dir.captures(&dev_out).unwrap_or_else(|| panic!("dev.sh output: {dev_out}"))[1].to_string();
    assert!(!Path::new(&dir).exists(), "the throwaway database directory {dir} is removed on exit");
    assert!(!state.exists(), "dev.sh's state is removed on exit");
    dev_out
}
