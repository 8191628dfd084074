//! `bearer-proxy onboard` against the emulator's admin API: the
//! application it makes (and the proxy serving with its client block),
//! converging and rotating, undoing a failed run, a dry run's reads only,
//! an unknown instance, and no secret in any output.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const ADMIN_ID: &str = "onboard-admin";
const ADMIN_SECRET: &str = "admin-Secret-that-must-not-leak";
const OIC_APP: &str = "OIC-orders-test";
/// The audience of the instance: the support's SCOPE is behind it.
const AUDIENCE: &str = "https://oic.test:443";
const NAME: &str = "orders-proxy";

struct Domain {
    idp: Idp,
    instance: String,
    dir: tempfile::TempDir,
}

impl Domain {
    async fn start() -> Domain {
        let idp = Idp::start().await;
        idp.state.register_admin_client(ADMIN_ID, ADMIN_SECRET);
        let instance = idp.state.register_oic_app(OIC_APP, AUDIENCE);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.secret"), format!("{ADMIN_SECRET}\n")).unwrap();
        Domain { idp, instance, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self) -> Option<String> {
        std::fs::read_to_string(self.path("orders-proxy.secret"))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The applications named NAME in the domain.
    fn apps(&self) -> Vec<Value> {
        self.idp.state.directory.apps_named(NAME)
    }

    fn changing_calls(&self) -> Vec<String> {
        let calls = self.idp.state.directory.calls();
        calls
            .into_iter()
            .filter(|c| !c.starts_with("GET "))
            .collect()
    }

    /// Runs `onboard` with the usual flags and `extra`; stdin is empty.
    async fn onboard(&self, extra: &[&str]) -> (Output, String) {
        self.onboard_with(&self.usual_flags(), extra, "").await
    }

    fn usual_flags(&self) -> Vec<String> {
        let path = |n: &str| self.path(n).display().to_string();
        [
            "--domain-url",
            &self.idp.base_url(),
            "--admin-client-id",
            ADMIN_ID,
            "--admin-client-secret-file",
            &path("admin.secret"),
            "--oic-app",
            OIC_APP,
            "--name",
            NAME,
            "--secret-file",
            &path("orders-proxy.secret"),
            "--config-out",
            &path("orders-proxy.yaml"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    async fn onboard_with(
        &self,
        flags: &[String],
        extra: &[&str],
        stdin: &str,
    ) -> (Output, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"));
        cmd.arg("onboard")
            .args(flags)
            .args(extra)
            .env_remove("RUST_LOG");
        let (out, text) = run_with_stdin(cmd, stdin).await;
        self.assert_no_secret(&text);
        (out, text)
    }

    /// No admin secret, no token, no application secret in `text`.
    fn assert_no_secret(&self, text: &str) {
        assert!(!text.contains(ADMIN_SECRET), "admin secret in:\n{text}");
        assert!(!text.contains("eyJ"), "a token in:\n{text}");
        assert!(
            !text.contains("idcscs-"),
            "an application secret in:\n{text}"
        );
        if let Some(secret) = self.secret() {
            assert!(!text.contains(&secret), "the new secret in:\n{text}");
        }
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_makes_an_active_confidential_app_with_service_invoker_that_serves_through_the_proxy(
) {
    let domain = Domain::start().await;
    // A real domain takes a moment to propagate a new application, and
    // its "Others" rate limit answers 429: the command waits out both.
    domain
        .idp
        .state
        .directory
        .set_propagation_delay(Duration::from_secs(2));
    domain
        .idp
        .state
        .directory
        .fail_next("POST", "/admin/v1/Apps", 429, "Too many requests.");
    let (out, text) = domain.onboard(&["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report = json_of(&out);
    assert_eq!(report["outcome"], "created");
    assert_eq!(report["granted_roles"], json!(["ServiceInvoker"]));
    assert_eq!(report["check"]["scope"], SCOPE);
    assert_eq!(report["check"]["aud"], json!([AUDIENCE]));

    let apps = domain.apps();
    assert_eq!(apps.len(), 1);
    let app = &apps[0];
    assert_eq!(app["clientType"], "confidential");
    assert_eq!(app["isOAuthClient"], true);
    assert_eq!(app["active"], true);
    assert_eq!(app["basedOnTemplate"]["value"], "CustomWebAppTemplateId");
    assert_eq!(
        app["allowedScopes"],
        json!([{"fqs": SCOPE}, {"fqs": format!("{AUDIENCE}ic/api/")}])
    );
    assert_eq!(app["grantedAppRoles"][0]["display"], "ServiceInvoker");
    assert_eq!(app["grantedAppRoles"][0]["appId"], domain.instance.as_str());
    assert_eq!(report["client_id"], app["name"]);
    let mode = std::fs::metadata(domain.path("orders-proxy.secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The written block, unchanged, serves a request through the proxy.
    let written = std::fs::read_to_string(domain.path("orders-proxy.yaml")).unwrap();
    assert!(!written.contains(&domain.secret().unwrap()));
    let block: RawConfig = serde_yaml::from_str(&written).unwrap();
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&domain.idp, &upstream);
    config.add_client_route(NAME, block.clients[NAME].clone(), &upstream.url());
    config.files = vec![("orders-proxy.secret", domain.secret().unwrap())];
    let proxy = Proxy::start(&config).await;
    let r = client()
        .get(proxy.url("/orders-proxy/ic/api/integration/v1/flows"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let claims = verified_claims(&upstream.last_authorization());
    assert_eq!(claims["sub"], app["name"]);
    assert_eq!(claims["scope"], SCOPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_converges_the_application_and_new_secret_rotates_it() {
    let domain = Domain::start().await;
    let (out, text) = domain.onboard(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let app = domain.apps().remove(0);
    let id = app["id"].as_str().unwrap();
    let first_secret = domain.secret().unwrap();
    // Someone deactivates it and takes a scope and the grant type away.
    let directory = &domain.idp.state.directory;
    directory.set_status(id, &json!({"schemas": ["urn:ietf:params:scim:schemas:oracle:idcs:AppStatusChanger"], "active": false})).unwrap();
    let remove = |path: &str, value: Value| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": path, "value": value}],
        })
    };
    directory
        .patch_app(
            id,
            &remove(
                "allowedScopes",
                json!([{"fqs": format!("{AUDIENCE}ic/api/")}]),
            ),
        )
        .unwrap();
    directory
        .patch_app(id, &remove("allowedGrants", json!(["client_credentials"])))
        .unwrap();

    let (out, text) = domain.onboard(&["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report = json_of(&out);
    assert_eq!(report["outcome"], "found");
    assert_eq!(report["secret"], "kept");
    let apps = domain.apps();
    assert_eq!(apps.len(), 1, "no second application");
    assert_eq!(apps[0]["id"], id);
    assert_eq!(apps[0]["active"], true);
    assert_eq!(apps[0]["allowedScopes"].as_array().unwrap().len(), 2);
    assert_eq!(apps[0]["allowedGrants"], json!(["client_credentials"]));
    assert_eq!(
        domain.secret().unwrap(),
        first_secret,
        "the secret is left alone"
    );
    let calls = domain.changing_calls();
    let count = |call: &str| calls.iter().filter(|c| *c == call).count();
    assert_eq!(count("POST /admin/v1/Apps"), 1, "one creation: {calls:?}");
    assert_eq!(
        count("POST /admin/v1/Grants"),
        1,
        "the grant was kept: {calls:?}"
    );
    assert_eq!(
        count(&format!("PATCH /admin/v1/Apps/{id}")),
        1,
        "onboard adds what is missing: {calls:?}"
    );

    let (out, text) = domain.onboard(&["--new-secret", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_eq!(json_of(&out)["secret"], "rotated");
    let second_secret = domain.secret().unwrap();
    assert_ne!(second_secret, first_secret);
    let client_id = apps[0]["name"].as_str().unwrap();
    assert_eq!(
        directory.secret_matches(client_id, &first_secret),
        Some(false)
    );
    assert_eq!(
        directory.secret_matches(client_id, &second_secret),
        Some(true)
    );
    assert_eq!(domain.apps().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_grant_step_leaves_nothing_behind() {
    let domain = Domain::start().await;
    domain.idp.state.directory.fail_next(
        "POST",
        "/admin/v1/Grants",
        500,
        "An internal error occurred while granting.",
    );
    let (out, text) = domain.onboard(&["--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "step \"grant ServiceInvoker\" failed: 500: An internal error occurred while granting."
        ),
        "{text}"
    );
    assert!(
        text.contains("rolled back: deactivated and deleted"),
        "{text}"
    );
    assert_eq!(json_of(&out)["failed_step"], "grant ServiceInvoker");
    assert_eq!(
        domain.apps(),
        Vec::<Value>::new(),
        "the created application is gone"
    );
    assert!(!domain.path("orders-proxy.secret").exists());
    assert!(!domain.path("orders-proxy.yaml").exists());
    let calls = domain.changing_calls();
    assert!(calls[0].starts_with("POST /admin/v1/Apps"), "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("DELETE /admin/v1/Apps/")),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_only_reads_and_writes_no_file() {
    let domain = Domain::start().await;
    let (out, text) = domain.onboard(&["--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("would call   POST /admin/v1/Apps"), "{text}");
    assert!(
        text.contains("would call   POST /admin/v1/Grants"),
        "{text}"
    );
    assert!(
        text.contains("would call   PUT /admin/v1/AppStatusChanger/"),
        "{text}"
    );
    assert_eq!(domain.changing_calls(), Vec::<String>::new());
    assert!(
        !domain.idp.state.directory.calls().is_empty(),
        "it did read"
    );
    assert_eq!(domain.apps(), Vec::<Value>::new());
    assert!(!domain.path("orders-proxy.secret").exists());
    assert!(!domain.path("orders-proxy.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_instance_application_or_a_non_admin_client_exits_1() {
    let domain = Domain::start().await;
    let mut flags = domain.usual_flags();
    let at = flags.iter().position(|f| f == OIC_APP).unwrap();
    flags[at] = "OIC-nowhere".into();
    let (out, text) = domain.onboard_with(&flags, &[], "").await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("find the instance application"), "{text}");
    assert!(text.contains("\"OIC-nowhere\""), "{text}");
    assert!(
        text.contains("displayName eq \"OIC-nowhere\""),
        "names the search: {text}"
    );

    // A client without the administrator role gets a token, not the API.
    let mut flags = domain.usual_flags();
    let at = flags.iter().position(|f| f == ADMIN_ID).unwrap();
    flags[at] = CLIENT_ID.into();
    let at = flags
        .iter()
        .position(|f| f == "--admin-client-secret-file")
        .unwrap();
    flags[at + 1] = "-".into();
    let (out, text) = domain.onboard_with(&flags, &[], CLIENT_SECRET).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("403: The client is not authorized"), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "{text}");
    assert_eq!(domain.changing_calls(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_output_and_bad_arguments_exit_2() {
    let domain = Domain::start().await;
    // The admin secret through stdin; every run's output is checked by
    // `onboard_with` for the admin secret, tokens and the new secret.
    let mut flags = domain.usual_flags();
    let at = flags
        .iter()
        .position(|f| f == "--admin-client-secret-file")
        .unwrap();
    flags[at + 1] = "-".into();
    let (out, text) = domain.onboard_with(&flags, &["--json"], ADMIN_SECRET).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let secret = domain.secret().unwrap();
    assert!(secret.starts_with("idcscs-"));
    let written = std::fs::read_to_string(domain.path("orders-proxy.yaml")).unwrap();
    assert!(
        !written.contains(&secret) && !written.contains(ADMIN_SECRET),
        "{written}"
    );
    let (out, text) = domain.onboard(&["--new-secret"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    domain.assert_no_secret(&text);

    // The admin secret cannot be an argument; a bad URL is refused.
    let (out, text) = domain
        .onboard(&["--admin-client-secret", ADMIN_SECRET])
        .await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    let mut flags = domain.usual_flags();
    flags[1] = "http://idcs.example.com".into();
    let (out, text) = domain.onboard_with(&flags, &[], "").await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("--domain-url must be https"), "{text}");
}

#[test]
fn onboard_help_explains_each_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(["onboard", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--domain-url",
        "--admin-client-id",
        "--admin-client-secret-file",
        "--admin-token-file",
        "--oic-app",
        "--name",
        "--grant",
        "--secret-file",
        "--config-out",
        "--new-secret",
        "--dry-run",
        "--json",
    ] {
        let line = help.lines().find(|l| l.trim_start().starts_with(flag));
        assert!(line.is_some(), "{flag} in:\n{help}");
    }
    assert!(
        help.contains("ServiceInvoker") && help.contains("0600"),
        "{help}"
    );
}

/// The README's commands against the demo, as written (ports moved to
/// free ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_onboards_an_application_against_the_running_demo() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("--domain-url http://127.0.0.1:9400"))
        .expect("the README shows onboarding against the demo");
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path()).await;
    let script = block
        .replace("\\\n", " ")
        .replace("127.0.0.1:9400", &format!("127.0.0.1:{}", demo.idp))
        .replace(
            "bearer-proxy ",
            &format!("{} ", env!("CARGO_BIN_EXE_bearer-proxy")),
        );
    let work = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-ec", &script])
            .current_dir(work)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("roles        ServiceInvoker"), "{text}");
    let mode = std::fs::metadata(dir.path().join("orders-proxy.secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let block = std::fs::read_to_string(dir.path().join("orders-proxy.yaml")).unwrap();
    assert!(
        block.contains("scopes:\n    - https://oic.demo.invalid:443urn:opc:resource:consumer::all"),
        "{block}"
    );
}

/// `bearer-proxy emulator --oic-app … --admin-client …` as a process of its
/// own: the flags the demo and a developer use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_command_registers_the_instance_and_the_admin_client() {
    let port = free_port();
    let _emulator = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(["emulator", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--oic-app", &format!("{OIC_APP}={AUDIENCE}")])
            .args(["--admin-client", &format!("{ADMIN_ID}:{ADMIN_SECRET}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port).await;
    let domain = Domain::start().await;
    let mut flags = domain.usual_flags();
    flags[1] = format!("http://127.0.0.1:{port}");
    let (out, text) = domain
        .onboard_with(&flags, &["--dry-run", "--json"], "")
        .await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report = json_of(&out);
    assert_eq!(report["outcome"], "would_create");
    assert_eq!(report["instance_app"]["audience"], AUDIENCE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_file_step_undoes_the_application_and_leaves_files_it_had_not_written() {
    let domain = Domain::start().await;
    // The secret cannot be written (a directory stands there); the block's
    // path holds a file of the user's own, not yet reached.
    std::fs::create_dir(domain.path("orders-proxy.secret")).unwrap();
    std::fs::write(domain.path("orders-proxy.yaml"), "# the user's own\n").unwrap();
    let (out, text) = domain.onboard(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("step \"write the secret file\" failed"),
        "{text}"
    );
    assert!(
        text.contains("rolled back: deactivated and deleted"),
        "{text}"
    );
    assert_eq!(domain.apps(), Vec::<Value>::new());
    let kept = std::fs::read_to_string(domain.path("orders-proxy.yaml")).unwrap();
    assert_eq!(kept, "# the user's own\n");
}
