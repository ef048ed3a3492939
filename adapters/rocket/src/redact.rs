//! Rocket's own log lines without query strings.
//!
//! Rocket 0.5 logs every request at info level as `GET /authorize?client_id=…&state=…:`,
//! and an unmatched one as `No matching routes for GET /x?…`. An OpenID provider's query
//! strings carry what must not reach a log: `id_token_hint`, `login_hint`, `state`,
//! `code_challenge`, the parked request's handle. Rocket has no per-route switch for that
//! line, so the adapter filters at the `log` facade instead: [`RedactQueries`] wraps any
//! [`log::Log`] and cuts the query from every URI in Rocket's records, and
//! [`install_logger`] installs it around a plain standard-error logger. The hyper server
//! logs the path alone for the same reason.

use std::fmt::Write as _;

/// A [`log::Log`] that passes every record to `L`, with the query string of each URI in
/// Rocket's own records (target `rocket…`) removed: `GET /authorize?state=x:` becomes
/// `GET /authorize:`. Records of other targets pass as they are.
///
/// Install it before Rocket starts (Rocket's own logger then stays out of the way; it only
/// installs itself if no logger is set):
///
/// ```no_run
/// struct MyLogger;
/// impl log::Log for MyLogger {
///     fn enabled(&self, _: &log::Metadata<'_>) -> bool { true }
///     fn log(&self, record: &log::Record<'_>) { eprintln!("{}", record.args()) }
///     fn flush(&self) {}
/// }
/// log::set_boxed_logger(Box::new(oidc_flow_rocket::RedactQueries(MyLogger))).unwrap();
/// log::set_max_level(log::LevelFilter::Info);
/// ```
#[derive(Debug)]
pub struct RedactQueries<L>(pub L);

impl<L: log::Log> log::Log for RedactQueries<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !record.target().starts_with("rocket") || !self.0.enabled(record.metadata()) {
            return self.0.log(record);
        }
        let mut text = String::new();
        let _ = write!(text, "{}", record.args());
        if !text.contains('?') {
            return self.0.log(record);
        }
        let redacted = without_queries(&text);
        self.0.log(
            &log::Record::builder()
                .args(format_args!("{redacted}"))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// `text` with every `?query` cut from its word, keeping the word's closing `:` or `.`
/// (Rocket writes `GET /path?query:` and `... for GET /path?query.`). A query never holds a
/// space, so a word ends it.
pub fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('?') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        if let Some(last @ (':' | '.' | ',')) = word.chars().last().filter(|_| word.len() > 1) {
            out.push(last);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// A plain logger: `LEVEL target: message` on standard error.
#[derive(Debug)]
struct Stderr;

impl log::Log for Stderr {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "{:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs [`RedactQueries`] around a plain standard-error logger at `level`, in place of
/// Rocket's: call it before `rocket::build()`. Fails if a logger is already installed.
pub fn install_logger(level: log::LevelFilter) -> Result<(), log::SetLoggerError> {
    log::set_boxed_logger(Box::new(RedactQueries(Stderr)))?;
    log::set_max_level(level);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::without_queries;

    #[test]
    fn queries_are_cut_and_the_closing_punctuation_kept() {
        for (line, want) in [
            (
                "GET /oidc/authorize?state=s3cret&x=y:",
                "GET /oidc/authorize:",
            ),
            (
                "No matching routes for GET /nope?token=abc.",
                "No matching routes for GET /nope.",
            ),
            ("GET /a?b GET /c?d:", "GET /a GET /c:"),
            ("GET /plain:", "GET /plain:"),
            ("why? because", "why because"),
            ("a ? b", "a  b"),
            ("", ""),
        ] {
            assert_eq!(without_queries(line), want, "{line}");
        }
    }
}
