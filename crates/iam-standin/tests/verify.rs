//! The stand-in's verifier accepts exactly the tokens Aurora would: signed by `db-auth` for the
//! right host, port, user and region, unexpired, intact.

use std::time::{Duration, SystemTime};

use db_auth::{TokenRequest, sign};
use iam_standin::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, sigv4, test_credentials};

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000)
}

fn expect(at: SystemTime) -> sigv4::Expect<'static> {
    sigv4::Expect {
        engine: sigv4::Engine::Rds,
        host: "aurora.standin.internal",
        port: 5433,
        user: "app_runtime",
        region: "eu-west-1",
        access_key_id: TEST_ACCESS_KEY_ID,
        secret_access_key: TEST_SECRET_ACCESS_KEY,
        now: at,
    }
}

fn token(host: &str, port: u16, user: &str, region: &str) -> String {
    sign(&TokenRequest::rds(host, port, user, region), &test_credentials(), now()).unwrap()
}

#[test]
fn accepts_a_good_token_for_its_whole_life() {
    let t = token("aurora.standin.internal", 5433, "app_runtime", "eu-west-1");
    assert_eq!(sigv4::verify(&t, &expect(now())), Ok(()));
    assert_eq!(sigv4::verify(&t, &expect(now() + Duration::from_secs(899))), Ok(()));
    let upper = token("Aurora.Standin.Internal", 5433, "app_runtime", "eu-west-1");
    assert_eq!(sigv4::verify(&upper, &expect(now())), Ok(()), "host names are case-insensitive");
}

#[test]
fn rejects_every_kind_of_wrong_token() {
    let good = token("aurora.standin.internal", 5433, "app_runtime", "eu-west-1");
    let cases: Vec<(&str, String, SystemTime)> = vec![
        ("expired", good.clone(), now() + Duration::from_secs(900)),
        ("from the future", good.clone(), now() - Duration::from_secs(600)),
        ("other host", token("other.internal", 5433, "app_runtime", "eu-west-1"), now()),
        ("other port", token("aurora.standin.internal", 5432, "app_runtime", "eu-west-1"), now()),
        ("other user", token("aurora.standin.internal", 5433, "app_owner", "eu-west-1"), now()),
        ("other region", token("aurora.standin.internal", 5433, "app_runtime", "us-east-1"), now()),
        (
            "tampered signature",
            format!("{}{}", &good[..good.len() - 1], if good.ends_with('0') { '1' } else { '0' }),
            now(),
        ),
        ("tampered user", good.replace("DBUser=app_runtime", "DBUser=app_runtimf"), now()),
        ("tampered expiry", good.replace("X-Amz-Expires=900", "X-Amz-Expires=901"), now()),
        ("not a token", "hunter2".into(), now()),
        ("empty", String::new(), now()),
    ];
    for (what, t, at) in cases {
        assert!(sigv4::verify(&t, &expect(at)).is_err(), "{what} must be rejected");
    }
    let other_key = db_auth::Credentials::new("AKIAOTHER", "other-secret", None, None, "test");
    let forged =
        sign(&TokenRequest::rds("aurora.standin.internal", 5433, "app_runtime", "eu-west-1"), &other_key, now())
            .unwrap();
    assert!(sigv4::verify(&forged, &expect(now())).is_err(), "unknown access key");
    let wrong_secret = db_auth::Credentials::new(TEST_ACCESS_KEY_ID, "guessed-secret", None, None, "test");
    let forged =
        sign(&TokenRequest::rds("aurora.standin.internal", 5433, "app_runtime", "eu-west-1"), &wrong_secret, now())
            .unwrap();
    assert_eq!(sigv4::verify(&forged, &expect(now())), Err("signature mismatch".to_string()));
}

#[test]
fn dsql_tokens_are_checked_for_their_action_and_carry_no_port() {
    let host = "abcdefghijklmnopqrst.dsql.eu-west-1.on.aws";
    let at = now();
    let mut e = expect(at);
    e.engine = sigv4::Engine::Dsql;
    e.host = host;
    let runtime = sign(&TokenRequest::dsql(host, "eu-west-1", false), &test_credentials(), at).unwrap();
    let admin = sign(&TokenRequest::dsql(host, "eu-west-1", true), &test_credentials(), at).unwrap();
    assert_eq!(sigv4::verify(&runtime, &e), Ok(()), "DbConnect for a custom role");
    let err = sigv4::verify(&admin, &e).unwrap_err();
    assert!(err.contains("DbConnectAdmin"), "{err}");
    e.user = "admin";
    assert_eq!(sigv4::verify(&admin, &e), Ok(()), "DbConnectAdmin for admin");
    assert!(sigv4::verify(&runtime, &e).is_err(), "DbConnect does not make admin");
    // An RDS token is not a DSQL token, and a DSQL stand-in is not fooled by one.
    let rds = token(host, 5433, "admin", "eu-west-1");
    assert!(sigv4::verify(&rds, &e).is_err());
    let mut rds_expect = expect(at);
    rds_expect.host = host;
    assert!(sigv4::verify(&runtime, &rds_expect).is_err(), "an RDS stand-in refuses a DSQL token");
}
