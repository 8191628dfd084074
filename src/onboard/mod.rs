//! `bearer-proxy onboard`: the console steps that make an Oracle
//! Integration client — a confidential application with the instance's
//! scopes, ServiceInvoker granted, activated, its secret copied — done
//! through the identity domain's admin REST API, converging when run
//! again and leaving nothing half-made when a step fails.
//!
//! Reads first (`plan`), then the changing calls (`apply`), then the
//! files and a token check (`finish`). Exit 0 done, 1 refused or failed,
//! 2 bad arguments.

mod admin;
mod apply;
mod args;
mod finish;
mod plan;
mod report;
mod scim;

use std::process::ExitCode;

use args::Inputs;
pub use args::OnboardArgs;

/// Why a run stopped: the step, and what the identity domain said.
#[derive(Debug)]
pub struct Failure {
    pub step: &'static str,
    pub status: Option<u16>,
    pub detail: String,
    /// What became of the application this run created, when it had to
    /// be undone.
    pub rollback: Option<String>,
}

impl Failure {
    fn call(step: &'static str, error: admin::CallError) -> Self {
        Failure {
            step,
            status: error.status,
            detail: error.detail,
            rollback: None,
        }
    }

    fn said(step: &'static str, detail: String) -> Self {
        Failure {
            step,
            status: None,
            detail,
            rollback: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step \"{}\" failed: ", self.step)?;
        if let Some(status) = self.status {
            write!(f, "{status}: ")?;
        }
        f.write_str(&self.detail)?;
        if let Some(rollback) = &self.rollback {
            write!(f, "\n{rollback}")?;
        }
        Ok(())
    }
}

pub fn run(args: &OnboardArgs) -> ExitCode {
    let inputs = match Inputs::read(args) {
        Ok(i) => i,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::runtime::for_command() {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(onboard(&inputs)) {
        Ok(report) => {
            report::print(&report, inputs.json);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            report::print_failure(&failure, inputs.json);
            ExitCode::FAILURE
        }
    }
}

async fn onboard(inputs: &Inputs) -> Result<report::Report, Failure> {
    let api = args::admin_api(inputs).await?;
    let plan = plan::make(&api, inputs).await?;
    if inputs.dry_run {
        return Ok(report::planned(inputs, &plan));
    }
    // A found application's secret cannot be read back: without
    // --new-secret the one in the secret file must be there, checked
    // before anything changes.
    if plan.existing.is_some() && !inputs.new_secret {
        finish::require_secret_file(inputs)?;
    }
    let applied = apply::apply(&api, &plan).await?;
    let mut written = Vec::new();
    match finish::finish(&api, inputs, &plan, &applied, &mut written).await {
        Ok(report) => Ok(report),
        Err(mut failure) if applied.created => {
            finish::remove_files(&written);
            failure.rollback = Some(apply::undo(&api, &applied.app_id).await);
            Err(failure)
        }
        Err(failure) => Err(failure),
    }
}
