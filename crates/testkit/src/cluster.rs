//! Starting a throwaway PostgreSQL cluster: `initdb` and `postgres` from the machine's server
//! package, as an unprivileged user when the tests run as root, on a free port, with a watchdog
//! that removes it when the test process is gone (see [`crate::pg`]).

use std::{
    fs,
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::server::{MASTER_USER, SUPERUSER, Server};

/// Finds a PostgreSQL server program: on PATH, in Debian's versioned directories, or Homebrew's.
pub fn find_pg_bin(program: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(program)).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| std::cmp::Reverse(version_of(p)));
    candidates.extend(debian);
    for brew in [
        "/opt/homebrew/opt/postgresql@16/bin",
        "/usr/local/opt/postgresql@16/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
    ] {
        candidates.push(Path::new(brew).join(program));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn version_of(bin: &Path) -> u32 {
    bin.ancestors()
        .nth(2)
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub const INSTALL_HINT: &str = "PostgreSQL server programs (initdb, postgres) were not found. Install them: \
Debian/Ubuntu `sudo apt-get install -y postgresql`, macOS `brew install postgresql@16`; \
or set TEST_DATABASE_URL to a superuser URL of a server you already have.";

/// The unprivileged account to run the server as when we are root: `postgres`, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let entry = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
    };
    ["postgres", "nobody"].iter().find_map(|n| match entry(n) {
        Some((Some(u), Some(g))) => Some((u, g)),
        _ => None,
    })
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(crate) fn start_cluster() -> Result<Server, String> {
    let initdb = find_pg_bin("initdb").ok_or(INSTALL_HINT)?;
    let postgres = find_pg_bin("postgres").ok_or(INSTALL_HINT)?;
    let as_user = if running_as_root() {
        Some(unprivileged_user().ok_or("running as root and no unprivileged user (postgres or nobody) exists")?)
    } else {
        None
    };

    let base = tempfile::Builder::new().prefix("tenant-api-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    let data = base.join("data");
    let sock = base.join("sock");
    fs::create_dir_all(&sock).map_err(|e| e.to_string())?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let pwfile = base.join("pw");
    fs::write(&pwfile, &password).map_err(|e| e.to_string())?;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = as_user {
        for p in [&base, &sock, &pwfile] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
    }
    let run_as = |cmd: &mut Command| {
        if let Some((uid, gid)) = as_user {
            cmd.uid(uid).gid(gid);
        }
    };

    let mut init = Command::new(&initdb);
    init.args(["-D"]).arg(&data).args([
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    ]);
    init.arg(format!("--pwfile={}", pwfile.display())).stdout(Stdio::null()).stderr(Stdio::piped());
    run_as(&mut init);
    let out = init.output().map_err(|e| format!("running {}: {e}", initdb.display()))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let _ = fs::remove_file(&pwfile);

    let port = free_port().map_err(|e| e.to_string())?;
    // The watchdog: runs the server, and stops it and removes the directory once this test
    // process is gone (checked every 200 ms), so nothing outlives the test run.
    // A file `restart` in the directory asks for a restart: the server is stopped (fast) and
    // started again, as a real PostgreSQL restart looks to clients (see `Server::restart`).
    let script = r#"
        start() {
          "$PG" -D "$DATA" -p "$PORT" -k "$SOCK" -c listen_addresses=127.0.0.1 -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                -c shared_buffers=32MB -c log_min_messages=warning >>"$BASE/log" 2>&1 &
          pg=$!
        }
        alive() { [ -d "/proc/$WATCH" ] || kill -0 "$WATCH" 2>/dev/null; }
        start
        while alive; do
          if [ -e "$BASE/restart" ]; then
            kill -INT "$pg" 2>/dev/null; wait "$pg" 2>/dev/null
            rm -f "$BASE/restart"
            start
          elif ! kill -0 "$pg" 2>/dev/null; then
            break
          fi
          sleep 0.05
        done
        kill -INT "$pg" 2>/dev/null
        wait "$pg" 2>/dev/null
        rm -rf "$BASE"
    "#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd.env("PG", &postgres).env("DATA", &data).env("PORT", port.to_string()).env("SOCK", &sock).env("BASE", &base);
    cmd.env("WATCH", std::process::id().to_string());
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // Its own process group: Ctrl-C in a terminal reaches the tests, and the watchdog still
    // gets to clean up after them.
    cmd.process_group(0);
    run_as(&mut cmd);
    cmd.spawn().map_err(|e| format!("starting postgres: {e}"))?;

    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = fs::read_to_string(base.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start listening on port {port}: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = Server {
        host: "127.0.0.1".into(),
        port,
        superuser: SUPERUSER.into(),
        password,
        master: MASTER_USER.into(),
        master_password: uuid::Uuid::new_v4().simple().to_string(),
        socket_dir: Some(sock),
        data_dir: Some(data),
    };
    Ok(crate::aurora::make_roles(&server))
}
