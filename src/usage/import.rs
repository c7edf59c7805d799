//! import-api-keys from CSV, with the `csv` crate.

use std::io::Read;

use crate::error::FieldError;
use crate::model::ApiKeyValue;
use crate::store::{ImportKey, ImportResult, ImportWarning, Management};

use super::error::UsageError;

/// Where each known column is in the file's header.
struct Columns {
    key: usize,
    name: usize,
    description: Option<usize>,
    enabled: Option<usize>,
    plans: Option<usize>,
    /// The header's own spelling of each column, for warnings.
    header: Vec<String>,
}

impl Columns {
    fn find(header: &csv::StringRecord) -> Result<Self, FieldError> {
        let at = |name: &str| {
            header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        let required = |name: &str| {
            at(name).ok_or_else(|| {
                FieldError::new(
                    "header",
                    format!(
                        "the first line must name the columns, with Key and Name among them \
                         (any case, any order); the column {name} is missing"
                    ),
                )
            })
        };
        Ok(Self {
            key: required("Key")?,
            name: required("Name")?,
            description: at("Description"),
            enabled: at("Enabled"),
            plans: at("UsagePlanIds"),
            header: header.iter().map(|h| h.trim().to_owned()).collect(),
        })
    }

    fn name(&self, i: usize) -> String {
        self.header.get(i).cloned().unwrap_or_default()
    }
}

/// One row as a key to import, or the warning that says why not. The key's value never appears in
/// a warning.
fn row(cols: &Columns, line: u64, rec: &csv::StringRecord) -> Result<ImportKey, ImportWarning> {
    let warn = |i: usize, message: String| ImportWarning {
        line,
        column: cols.name(i),
        message,
    };
    let cell = |i: usize| rec.get(i).map(str::trim).unwrap_or("");
    let value = ApiKeyValue::new(cell(cols.key)).map_err(|e| warn(cols.key, e.reason))?;
    let name = cell(cols.name);
    if name.is_empty() {
        return Err(warn(
            cols.name,
            "must not be empty: give the key a name".into(),
        ));
    }
    let description = cols
        .description
        .map(cell)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let enabled = match cols.enabled.map(cell) {
        None | Some("") => true,
        Some(e) if e.eq_ignore_ascii_case("true") => true,
        Some(e) if e.eq_ignore_ascii_case("false") => false,
        Some(e) => {
            return Err(warn(
                cols.enabled.unwrap_or_default(),
                format!("must be true or false, not {e:?}"),
            ))
        }
    };
    let usage_plan_ids = cols
        .plans
        .map(cell)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(ImportKey {
        line,
        value,
        name: name.to_owned(),
        description,
        enabled,
        usage_plan_ids,
    })
}

/// AWS's `import-api-keys` from CSV (feature `csv`): reads `csv` and imports its keys into
/// `store` ([`Management::import_api_keys`]).
///
/// Columns `Key` and `Name` are required; `Description`, `Enabled` (`true` or `false`, default
/// true) and `UsagePlanIds` (quoted, comma-separated) are optional; header names are
/// case-insensitive and in any order; other columns are ignored. A value imported again
/// overwrites its key. A bad row (a malformed line, a bad value, an unknown plan) is a warning
/// naming its line and column, and the good rows land; with `fail_on_warnings` any warning
/// refuses the whole file and nothing changes. A file without the required header is refused.
///
/// # Examples
///
/// ```
/// use tower_usage_plans::model::{ApiStage, UsagePlan};
/// use tower_usage_plans::store::{ApiKeyQuery, Management, MemoryStore, PageRequest};
/// use tower_usage_plans::usage::import_csv;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let mut plan = UsagePlan::new("plan111", "FreePlan");
/// plan.api_stages.push(ApiStage::new("abc123def4", "prod"));
/// store.create_usage_plan(plan).await.unwrap();
///
/// let file = "name,key,enabled,usageplanIds,notes\n\
///             ClientA,aBcDeFgHiJkLmNoPqRsTuVwXyZ123,true,\"plan111\",x\n\
///             ClientB,short,true,,y\n";
/// let result = import_csv(&store, file.as_bytes(), false).await.unwrap();
/// assert_eq!(result.ids.len(), 1);
/// assert_eq!(result.warnings[0].to_string(),
///     "line 3, column key: an API key value must be 20 to 128 characters long, this one has 5");
/// let keys = store.get_usage_plan_keys("plan111", &PageRequest::default()).await.unwrap();
/// assert_eq!(keys.items[0].name, "ClientA");
///
/// // With fail_on_warnings, the same file changes nothing.
/// let store = MemoryStore::new();
/// assert!(import_csv(&store, file.as_bytes(), true).await.is_err());
/// assert!(store.get_api_keys(&ApiKeyQuery::default()).await.unwrap().items.is_empty());
/// # }
/// ```
pub async fn import_csv<S: Management>(
    store: &S,
    csv: impl Read,
    fail_on_warnings: bool,
) -> Result<ImportResult, UsageError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(csv);
    let header = reader.headers().map_err(|e| {
        FieldError::new(
            "header",
            format!("the first line cannot be read as CSV ({e}); it must name the columns, Key and Name among them"),
        )
    })?;
    let cols = Columns::find(header)?;
    let width = cols.header.len();
    let mut keys = Vec::new();
    let mut warnings = Vec::new();
    let mut rec = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {
                let line = rec.position().map_or(line, |p| p.line());
                if rec.len() != width {
                    warnings.push(ImportWarning {
                        line,
                        column: "*".into(),
                        message: format!(
                            "has {} fields, but the header names {width}; quote a field that \
                             holds a comma",
                            rec.len()
                        ),
                    });
                    continue;
                }
                match row(&cols, line, &rec) {
                    Ok(key) => keys.push(key),
                    Err(w) => warnings.push(w),
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                let message = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "is not valid UTF-8".to_owned(),
                    _ => "cannot be read as CSV".to_owned(),
                };
                warnings.push(ImportWarning {
                    line,
                    column: "*".into(),
                    message,
                });
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok(store
        .import_api_keys(keys, warnings, fail_on_warnings)
        .await?)
}
