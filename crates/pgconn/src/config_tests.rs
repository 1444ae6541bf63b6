//! The configuration parser: what each variable means, and that a bad value names its variable.

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

#[test]
fn url_gives_every_part() {
    let cfg = DbConfig::from_env(env(&[("DATABASE_URL", "postgres://bob:s%40cret@127.0.0.1:6543/shop")])).unwrap();
    assert_eq!(
        (cfg.host.as_str(), cfg.port, cfg.dbname.as_str(), cfg.user.as_str()),
        ("127.0.0.1", 6543, "shop", "bob")
    );
    assert_eq!(cfg.auth, Auth::Password(Some(Secret::new("s@cret"))));
    assert_eq!(cfg.tls, TlsMode::Disable);
}

#[test]
fn url_sslmode_means_verified_tls() {
    let cfg = DbConfig::from_url("postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
    assert_eq!(cfg.tls, TlsMode::VerifyFull(CaSource::File("/ca.pem".into())));
}

#[test]
fn url_without_sslmode_verifies_unless_loopback() {
    let remote = DbConfig::from_url("postgres://u@db.example.com/d").unwrap();
    assert_eq!(remote.tls, TlsMode::VerifyFull(CaSource::RdsBundle));
    for local in ["localhost", "127.0.0.1", "127.0.0.2", "[::1]"] {
        let cfg = DbConfig::from_url(&format!("postgres://u@{local}:5432/d")).unwrap();
        assert_eq!(cfg.tls, TlsMode::Disable, "{local}");
    }
    let off = DbConfig::from_url("postgres://u@db.example.com/d?sslmode=disable").unwrap();
    assert_eq!(off.tls, TlsMode::Disable);
}

#[test]
fn an_unknown_sslmode_is_an_error_naming_it() {
    for mode in ["verify_full", "prefer", "allow", "on"] {
        let err = DbConfig::from_url(&format!("postgres://u@h/d?sslmode={mode}")).unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL") && err.contains(mode), "{err}");
    }
}

#[test]
fn iam_needs_a_region_and_turns_tls_on() {
    let err = DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", "iam")])).unwrap_err();
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
    let cfg = DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", "iam"), ("AWS_REGION", "eu-west-1")])).unwrap();
    assert_eq!(cfg.auth, Auth::Iam { region: "eu-west-1".into() });
    assert_eq!(cfg.tls, TlsMode::VerifyFull(CaSource::RdsBundle));
    assert_eq!((cfg.pool_max, cfg.connect_timeout), (1, Duration::from_secs(30)));
}

#[test]
fn dsql_trusts_amazon_roots_and_replaces_connections_before_an_hour() {
    let cfg = DbConfig::from_env(env(&[
        ("DB_HOST", "abc.dsql.eu-west-1.on.aws"),
        ("DB_AUTH", "dsql"),
        ("AWS_REGION", "eu-west-1"),
    ]))
    .unwrap();
    assert_eq!(cfg.tls, TlsMode::VerifyFull(CaSource::AmazonRoots));
    assert_eq!(cfg.max_connection_age, Some(DSQL_MAX_CONNECTION_AGE));
    let aurora = DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", "iam"), ("AWS_REGION", "eu-west-1")])).unwrap();
    assert_eq!((aurora.tls, aurora.max_connection_age), (TlsMode::VerifyFull(CaSource::RdsBundle), None));
    let roots = crate::tls::client_config(&CaSource::AmazonRoots);
    assert!(roots.is_ok());
}

#[test]
fn iam_without_tls_is_refused() {
    let err =
        DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", "iam"), ("AWS_REGION", "r"), ("DB_TLS", "disable")]))
            .unwrap_err();
    assert!(err.to_string().contains("without verified TLS"), "{err}");
}

#[test]
fn malformed_values_name_their_variable() {
    for (var, value) in [
        ("DB_PORT", "x"),
        ("DB_POOL_MAX", "0"),
        ("DB_CONNECT_TIMEOUT_SECS", "-1"),
        ("DB_CONNECT_TIMEOUT_SECS", "1e300"),
        ("DB_STATEMENT_TIMEOUT_MS", "0.5"),
        ("DB_IDLE_CHECK_SECS", "-1"),
        ("DB_IDLE_CHECK_SECS", "inf"),
        ("DB_IDLE_SESSION_TIMEOUT_SECS", "-5"),
        ("DB_AUTH", "kerberos"),
    ] {
        let err = DbConfig::from_env(env(&[("DB_HOST", "h"), (var, value)])).unwrap_err();
        assert!(err.to_string().contains(var), "{var}: {err}");
    }
    let err = DbConfig::from_env(env(&[])).unwrap_err();
    assert!(err.to_string().contains("DB_HOST"), "{err}");
}

#[test]
fn describe_never_shows_the_password() {
    let cfg = DbConfig::from_url("postgres://u:hunter2@h/d").unwrap();
    assert!(!cfg.describe().contains("hunter2"));
    assert!(!format!("{cfg:?}").contains("hunter2"));
}

#[test]
fn the_engine_follows_the_login_and_a_mismatch_is_refused() {
    let dsql = DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", "dsql"), ("AWS_REGION", "r")])).unwrap();
    assert_eq!(dsql.engine, Engine::Dsql, "a DSQL login means the DSQL engine");
    assert_eq!(dsql.idle_session_timeout, None, "DSQL has no idle_session_timeout");
    let local =
        DbConfig::from_env(env(&[("DATABASE_URL", "postgres://u@localhost/d"), ("DB_ENGINE", "dsql")])).unwrap();
    assert_eq!(local.engine, Engine::Dsql, "the DSQL schema on a local server, with a password");
    for (auth, engine) in [("dsql", "postgres"), ("iam", "dsql")] {
        let err =
            DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_AUTH", auth), ("AWS_REGION", "r"), ("DB_ENGINE", engine)]))
                .unwrap_err();
        assert!(err.to_string().contains("DB_ENGINE"), "{auth} with {engine}: {err}");
    }
    let err = DbConfig::from_env(env(&[("DB_HOST", "h"), ("DB_ENGINE", "mysql")])).unwrap_err();
    assert!(err.to_string().contains("DB_ENGINE"), "{err}");
}
