//! `partnergate import`: migrates an ended project's files from CSV into the gateway.
//!
//! The import is an API client like any CRM: it registers each row with `POST /v1/participants`
//! under the client's own certificate, so the same validation, policy and audit apply. Rows that
//! fail land in a rejects file naming the line and the reason, never the data.
//!
//! The caller says which field each CSV column names and how its cells are typed ([`Column`]);
//! `partnergate import` takes that from the joint-controller agreement.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{ClientError, GatewayClient, Identity, Response};

/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Rows registered as new participants.
    pub created: u64,
    /// Rows whose national number was already registered (nothing written).
    pub existing: u64,
    /// Rows refused, listed in the rejects file.
    pub rejected: u64,
}

/// How the cells of a column are sent to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellType {
    /// `true` or `false` (also `ja`/`nee`, `yes`/`no`, `j`/`n`, `y`, `1`/`0`, any case).
    Bool,
    /// A whole number.
    Integer,
    /// Any other field, sent as text; the gateway validates it (dates, codes, national numbers).
    Text,
}

/// A CSV column that names a field of the agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// How its cells are sent.
    pub cell: CellType,
    /// What the field expects, in words, for the rejects file (e.g. `true or false`).
    pub expects: String,
}

/// One rejected row: the CSV line and why.
struct Reject {
    line: u64,
    code: String,
    message: String,
}

/// Turns one CSV cell into the JSON value of the field's type (`None` for an empty cell).
fn cell_value(ty: CellType, cell: &str) -> Result<Option<Value>, ()> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    Ok(Some(match ty {
        CellType::Bool => match cell.to_ascii_lowercase().as_str() {
            "true" | "ja" | "yes" | "1" | "j" | "y" => Value::Bool(true),
            "false" | "nee" | "no" | "0" | "n" => Value::Bool(false),
            _ => return Err(()),
        },
        CellType::Integer => Value::from(cell.parse::<i64>().map_err(|_| ())?),
        CellType::Text => Value::String(cell.to_string()),
    }))
}

/// Runs the import of `csv_path` with `identity` against the gateway at `url`. `columns` gives
/// the field a CSV header names (`None`: not a field of the agreement, and nothing is imported).
/// Writes the rejects to `rejects_path` (CSV: line, error, message) and returns the summary.
pub async fn run(
    columns: impl Fn(&str) -> Option<Column>,
    url: &str,
    identity: &Identity,
    acting_user: &str,
    csv_path: &Path,
    rejects_path: &Path,
) -> Result<Summary, String> {
    let api = GatewayClient::new(url, identity, CONCURRENCY)
        .map_err(|e| e.to_string())?
        .acting("trajectory_guidance", acting_user);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(csv_path)
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{}: {e}", csv_path.display()))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    // A column the agreement does not know would reject every row: refuse the file up front.
    let types: Vec<Column> = headers
        .iter()
        .map(|h| {
            columns(h).ok_or_else(|| {
                format!("column `{h}` is not a field of the agreement; nothing was imported")
            })
        })
        .collect::<Result<_, _>>()?;
    let rows = std::fs::read_to_string(csv_path)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0);
    let bar = progress(rows as u64, "importing");
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = JoinSet::new();
    let mut rejects = Vec::new();
    let mut summary = Summary::default();
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map(|p| p.line())
            .unwrap_or(i as u64 + 2);
        let record = match record {
            Ok(r) => r,
            Err(_) => {
                rejects.push(Reject {
                    line,
                    code: "invalid_csv".into(),
                    message: "the row is not valid CSV or has the wrong number of columns".into(),
                });
                continue;
            }
        };
        let mut fields = Map::new();
        let mut bad = None;
        for ((name, ty), cell) in headers.iter().zip(&types).zip(record.iter()) {
            match cell_value(ty.cell, cell) {
                Ok(Some(v)) => {
                    fields.insert(name.clone(), v);
                }
                Ok(None) => {}
                Err(()) => bad = Some(format!("field `{name}` expects {}", ty.expects)),
            }
        }
        if let Some(message) = bad {
            rejects.push(Reject {
                line,
                code: "invalid_value".into(),
                message,
            });
            bar.inc(1);
            continue;
        }
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| e.to_string())?;
        let api = api.clone();
        tasks.spawn(async move {
            let body = serde_json::json!({ "fields": fields });
            let result = api.post("/v1/participants", &body).await;
            drop(permit);
            (line, result)
        });
        while let Some(done) = tasks.try_join_next() {
            settle(done, &mut summary, &mut rejects);
            bar.inc(1);
        }
    }
    while let Some(done) = tasks.join_next().await {
        settle(done, &mut summary, &mut rejects);
        bar.inc(1);
    }
    bar.finish_and_clear();
    rejects.sort_by_key(|r| r.line);
    summary.rejected = rejects.len() as u64;
    write_rejects(rejects_path, &rejects)?;
    Ok(summary)
}

type Done = Result<(u64, Result<Response, ClientError>), tokio::task::JoinError>;

fn settle(done: Done, summary: &mut Summary, rejects: &mut Vec<Reject>) {
    let Ok((line, result)) = done else { return };
    match result {
        Ok(r) if r.status == 201 => summary.created += 1,
        Ok(r) if r.status == 200 => summary.existing += 1,
        Ok(r) => {
            let body = r.json();
            rejects.push(Reject {
                line,
                code: body["error"].as_str().unwrap_or("error").to_string(),
                // The gateway's messages never contain submitted values.
                message: body["message"].as_str().unwrap_or("").to_string(),
            });
        }
        Err(e) => rejects.push(Reject {
            line,
            code: "transport".into(),
            message: e.to_string(),
        }),
    }
}

fn write_rejects(path: &Path, rejects: &[Reject]) -> Result<(), String> {
    let mut w = csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    w.write_record(["line", "error", "message"])
        .map_err(|e| e.to_string())?;
    for r in rejects {
        w.write_record([r.line.to_string(), r.code.clone(), r.message.clone()])
            .map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// A progress bar on standard error (hidden when it is not a terminal).
fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The default rejects file: `<input>.rejects.csv` beside the input.
pub fn default_rejects_path(input: &Path) -> PathBuf {
    let mut name = input
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".rejects.csv");
    input.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_typed_by_the_field_type() {
        assert_eq!(
            cell_value(CellType::Bool, "Ja"),
            Ok(Some(Value::Bool(true)))
        );
        assert_eq!(cell_value(CellType::Bool, "maybe"), Err(()));
        assert_eq!(
            cell_value(CellType::Integer, " 7 "),
            Ok(Some(Value::from(7)))
        );
        assert_eq!(cell_value(CellType::Text, "  "), Ok(None));
    }
}
