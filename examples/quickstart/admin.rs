//! The quickstart's admin API (feature `admin`): its flags, and the task that serves API
//! Gateway's management protocol on its own port, over the same store and meter as the data
//! path, so that the aws CLI and boto3 manage keys, plans and usage with `--endpoint-url`.
//! Without the feature the flags are still known, and say how to turn it on.

use clap::Args;
use tower_usage_plans::meter::Meter;
use tower_usage_plans::store::Management;
use tower_usage_plans::UsagePlanLayer;

/// An access key as the flag takes it.
#[cfg(feature = "admin")]
pub type Credential = tower_usage_plans::admin::AccessKey;
/// An access key as the flag takes it (checked only with feature `admin`).
#[cfg(not(feature = "admin"))]
pub type Credential = String;

/// The admin API's flags.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Where to serve the admin API (API Gateway's management protocol, for the aws CLI and
    /// boto3; feature `admin`). It is served only with --admin-credentials or --admin-no-auth.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3001")]
    pub admin_listen: String,
    /// An access key the admin API accepts, ACCESS_KEY_ID:SECRET (repeatable): requests must be
    /// signed with it (SigV4), as the aws CLI and boto3 sign them.
    #[arg(long, value_name = "ACCESS_KEY_ID:SECRET")]
    pub admin_credentials: Vec<Credential>,
    /// Serve the admin API without checking signatures: for local use only.
    #[arg(long, conflicts_with = "admin_credentials")]
    pub admin_no_auth: bool,
}

/// Binds the admin port and serves the admin API in a task; returns the lines to print, or
/// `None` when neither --admin-credentials nor --admin-no-auth was given.
#[cfg(feature = "admin")]
pub async fn spawn<S, M>(
    args: &AdminArgs,
    store: S,
    meter: M,
    layer: &UsagePlanLayer<S, M>,
) -> Result<Option<String>, String>
where
    S: Management + Clone,
    M: Meter + Clone,
{
    use tower_usage_plans::admin::AdminApi;

    if args.admin_credentials.is_empty() && !args.admin_no_auth {
        return Ok(None);
    }
    // A plan change this layer could never apply is refused when made, not at the next start.
    let mut api = AdminApi::new(store, meter)
        .access_keys(args.admin_credentials.iter().cloned())
        .check_plans_with(layer);
    if args.admin_no_auth {
        api = api.no_auth();
    }
    let router = api.router().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&args.admin_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on --admin-listen {}: {e} (give HOST:PORT, e.g. 127.0.0.1:3001)",
                args.admin_listen
            )
        })?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map_or(args.admin_listen.clone(), |a| a.to_string())
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("error: admin API failed: {e}");
        }
    });
    Ok(Some(admin_lines(&base, args)))
}

/// Without the `admin` feature: refuses the admin flags, saying how to build with it.
#[cfg(not(feature = "admin"))]
pub async fn spawn<S, M>(
    args: &AdminArgs,
    _store: S,
    _meter: M,
    _layer: &UsagePlanLayer<S, M>,
) -> Result<Option<String>, String>
where
    S: Management + Clone,
    M: Meter + Clone,
{
    if args.admin_credentials.is_empty() && !args.admin_no_auth {
        return Ok(None);
    }
    Err(
        "the admin API needs the admin feature: cargo run --example quickstart --features admin \
         -- --admin-no-auth"
            .into(),
    )
}

/// What the quickstart prints about the admin API served on `base`.
#[cfg(feature = "admin")]
pub fn admin_lines(base: &str, args: &AdminArgs) -> String {
    use tower_usage_plans::admin::AccessKey;

    let (how, sign) = if args.admin_no_auth {
        (
            "no signature checked (--admin-no-auth)".to_owned(),
            " --no-sign-request",
        )
    } else {
        let ids: Vec<&str> = args.admin_credentials.iter().map(AccessKey::id).collect();
        (
            format!(
                "requests signed with the access key {} (aws configure, or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY)",
                ids.join(" or ")
            ),
            "",
        )
    };
    format!(
        "Admin API (API Gateway's management protocol) on {base}: {how}\n  \
         aws --endpoint-url {base} --region us-east-1{sign} apigateway get-usage-plans\n\n"
    )
}
