//! `bearer-proxy token`: the command-line "Generate access token".

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use crate::support::*;

fn config(dir: &std::path::Path, idp: &Idp) -> std::path::PathBuf {
    let password = RawClient {
        grant: GrantKind::Password,
        username: Some(USER.into()),
        password: Some(USER_PASSWORD.into()),
        ..oic_client(idp)
    };
    let yaml = RawConfig::default()
        .with_client("cc", oic_client(idp))
        .with_client("pw", password)
        .with_route(RawRoute::open("r", "/", "http://127.0.0.1:1", "cc"))
        .with_route(RawRoute::open("r2", "/pw/", "http://127.0.0.1:1", "pw"))
        .to_yaml();
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn token(config: &std::path::Path, secret: &str, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"));
    cmd.arg("token")
        .arg("-c")
        .arg(config)
        .args(args)
        .env("TEST_CLIENT_SECRET", secret);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_numbered_private_token_files_and_describes_them() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &idp);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let out_arg = out.to_str().unwrap();

    for n in 1..=2 {
        let o = token(&cfg, CLIENT_SECRET, &["--client", "cc", "--out", out_arg]).await;
        assert!(o.status.success(), "{}", stderr(&o));
        let file = out.join(format!("tokens{n}.tok"));
        let err = stderr(&o);
        assert!(err.contains(&format!("wrote {}", file.display())), "{err}");
        assert!(
            err.contains("expires: 20") && err.contains(&format!("scope: {SCOPE}")),
            "{err}"
        );
        assert!(err.contains("refresh token: none"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "tokens{n}.tok mode");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        verified_claims(&format!(
            "Bearer {}",
            json["access_token"].as_str().unwrap()
        ));
        assert_eq!(json["token_type"], "Bearer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_writes_the_response_to_stdout_and_scope_overrides_apply() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &idp);
    let scope = "https://oic.test:443/ic/api/";
    let o = token(
        &cfg,
        CLIENT_SECRET,
        &["--client", "cc", "--scope", scope, "--print"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let claims = verified_claims(&format!(
        "Bearer {}",
        json["access_token"].as_str().unwrap()
    ));
    assert_eq!(claims["scope"], scope);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no file written besides the config"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_refresh_token_works_for_password_and_is_refused_for_client_credentials() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &idp);

    let o = token(
        &cfg,
        CLIENT_SECRET,
        &["--client", "cc", "--include-refresh-token", "--print"],
    )
    .await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("client_credentials grant, which never issues refresh tokens"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        idp.state.request_count(),
        0,
        "refused before asking the identity service"
    );

    let o = token(
        &cfg,
        CLIENT_SECRET,
        &["--client", "pw", "--include-refresh-token", "--print"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(json["refresh_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(stderr(&o).contains("refresh token: included"));
    assert!(idp.state.requests()[0]
        .field("scope")
        .unwrap()
        .contains("offline_access"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_service_errors_are_shown_with_code_description_and_ecid_but_no_secret() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &idp);
    let wrong = "definitely-wrong-secret-987";
    let o = token(
        &cfg,
        wrong,
        &["--client", "cc", "--out", dir.path().to_str().unwrap()],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("invalid_client"), "{err}");
    assert!(err.contains("Client authentication failed"), "{err}");
    assert!(err.contains("(ecid "), "{err}");
    assert!(!err.contains(wrong) && !String::from_utf8_lossy(&o.stdout).contains(wrong));
    assert!(!dir.path().join("tokens1.tok").exists());

    let o = token(&cfg, CLIENT_SECRET, &["--client", "nope"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown client \"nope\" (known: cc, pw)"));
}
