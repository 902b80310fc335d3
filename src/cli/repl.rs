//! The interactive SQL prompt of `trailhound hunt` (no SQL given).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use super::hunt::{finish, split_statements, HuntArgs};
use super::output::{write_results, OutputFormat};
use crate::decode::schema;
use crate::read::{read_all, ReadReport};
use crate::source::Listing;
use crate::sql;

const HELP: &str = "\
Enter SQL ending with `;` (statements may span lines). The table is `cloudtrail`.
  \\d, .schema         show the table's columns
  \\format table|csv|json
  \\timing             show how long each statement takes (toggle)
  \\stats              what was read, and what was skipped and why
  \\q, .quit, exit     leave
Examples:
  SELECT eventname, count(*) n FROM cloudtrail GROUP BY 1 ORDER BY n DESC LIMIT 10;
  SELECT eventtime, useridentity.arn, requestparameters->>'keyId' FROM cloudtrail
    WHERE eventsource = 'kms.amazonaws.com' AND readonly = 'false';";

fn history_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    let dir = base.join("trailhound");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history.txt"))
}

pub fn run(
    runtime: &tokio::runtime::Runtime,
    args: &HuntArgs,
    listing: Listing,
    threads: usize,
    mut format: OutputFormat,
) -> anyhow::Result<i32> {
    // The lists first: a bad file is reported before the logs are read.
    let ctx = args.ip_lists.session(threads)?;
    let mut report = ReadReport::for_listing(&listing);
    let progress = super::progress_bar(0, "loading {pos}/{len} objects {wide_bar} {eta}");
    let invocations = crate::read::read_invocations(
        &listing.invocations,
        args.read.max_object_size,
        threads,
        &mut report,
    );
    let (batches, read) = read_all(
        listing.objects,
        args.read.decode_options(),
        threads,
        progress,
    );
    report.merge(&read);
    eprintln!("{report}");
    sql::register_batches(&ctx, batches)?;
    let tables = if invocations.is_empty() {
        "table `cloudtrail` is"
    } else {
        "tables `cloudtrail` and `bedrock_invocations` are"
    };
    sql::register_invocations(&ctx, invocations)?;
    eprintln!("{tables} ready. \\? for help, \\q to quit.");

    let mut editor = DefaultEditor::new()?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut timing = false;
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "trailhound> "
        } else {
            "        ...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if buffer.is_empty() {
            match command(trimmed, &mut format, &mut timing, &report) {
                Command::Quit => break,
                Command::Handled => {
                    let _ = editor.add_history_entry(trimmed);
                    continue;
                }
                Command::Sql => {}
            }
            if trimmed.is_empty() {
                continue;
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(text.trim());
        for statement in split_statements(&text) {
            let started = Instant::now();
            if let Err(e) = runtime.block_on(execute(&ctx, &statement, format, args.max_rows)) {
                eprintln!("error: {e:#}");
            }
            if timing {
                eprintln!("time: {:.3}s", started.elapsed().as_secs_f64());
            }
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(finish(&report, false, args.strict))
}

enum Command {
    Quit,
    Handled,
    Sql,
}

fn command(
    line: &str,
    format: &mut OutputFormat,
    timing: &mut bool,
    report: &ReadReport,
) -> Command {
    let mut words = line.trim_end_matches(';').split_whitespace();
    match words.next() {
        Some("\\q" | "\\quit" | ".quit" | ".exit" | "exit" | "quit") => Command::Quit,
        Some("\\?" | "\\h" | "\\help" | ".help" | "help") => {
            println!("{HELP}");
            Command::Handled
        }
        Some("\\d" | "\\d+" | ".schema" | "\\dt") => {
            print!("{}", describe_table());
            Command::Handled
        }
        Some("\\timing" | ".timer") => {
            *timing = !*timing;
            println!("timing is {}", if *timing { "on" } else { "off" });
            Command::Handled
        }
        Some("\\stats") => {
            println!("{report}");
            Command::Handled
        }
        Some("\\format" | ".mode") => {
            match words.next().map(str::to_ascii_lowercase).as_deref() {
                Some("table") => *format = OutputFormat::Table,
                Some("csv") => *format = OutputFormat::Csv,
                Some("json") => *format = OutputFormat::Json,
                _ => println!("usage: \\format table|csv|json"),
            }
            Command::Handled
        }
        Some(w) if w.starts_with('\\') => {
            println!("unknown command {w}; \\? lists the commands");
            Command::Handled
        }
        _ => Command::Sql,
    }
}

async fn execute(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    max_rows: usize,
) -> anyhow::Result<()> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    write_results(&mut out, &schema, &batches, format, max_rows)?;
    out.flush()?;
    Ok(())
}

/// The `cloudtrail` table's columns and types, nested types spelled out.
pub fn describe_table() -> String {
    let mut out = String::from("table cloudtrail\n");
    for field in schema::cloudtrail_schema().fields() {
        out.push_str(&format!(
            "  {:<30} {}\n",
            field.name(),
            type_name(field.data_type())
        ));
    }
    out
}

fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::Timestamp(_, _) => "timestamp (UTC)".into(),
        DataType::Dictionary(_, v) => type_name(v),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f: &Arc<Field>| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::List(item) => format!("array<{}>", type_name(item.data_type())),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_description_spells_out_nesting() {
        let text = describe_table();
        assert!(text.contains("eventtime"));
        assert!(text.contains("resources                      array<struct<arn: string, accountid: string, type: string>>"));
        assert!(text.contains("sessionissuer: struct<type: string"));
    }
}
