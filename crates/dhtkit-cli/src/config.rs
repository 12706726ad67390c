//! `--config FILE`: a TOML file that sets any long option of any command; the command line
//! wins. `dhtkit config [COMMAND [ARGS]]` prints the effective configuration.
//!
//! The file's keys are the long option names (`save-interval`, or `save_interval`). Keys at
//! the top level apply to every command that has that option (`db` serves `crawl`, `search`
//! and `web` alike); a table named after a command (`[node]`, `[crawl]`, `[web]`) applies to
//! that command only and wins over the top level:
//!
//! ```toml
//! db = "postgres://dhtkit@db.example/dht"
//!
//! [crawl]
//! bind = "0.0.0.0:6881"
//! nodes = 4
//! bootstrap = ["router.example.org:6881", "10.0.0.2:6881"]
//! metrics = "127.0.0.1:9100"
//! ```
//!
//! The file is read before the command line is parsed: every value it gives for an option not
//! on the command line is added to the command line, so that clap checks it exactly as if it
//! had been typed. An unknown key, a table where a value belongs, or a key for an option that
//! takes no value from a file (a positional argument) is an error (exit 2).

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory};
use toml::Value;

use crate::{BadInput, Cli};

/// Where `--config` is, if given: `--config FILE` or `--config=FILE`, anywhere.
fn config_path(argv: &[OsString]) -> Option<OsString> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            return None;
        }
        if a == "--config" {
            return it.next().cloned();
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(v.into());
        }
    }
    None
}

fn load(path: &Path) -> Result<toml::Table, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("--config {}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].lines().count().max(1)
        });
        let why = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
        BadInput(format!(
            "--config {}: not valid TOML at line {line}: {why}",
            path.display()
        ))
    })
}

/// A scalar as the command line would spell it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(d) => Some(d.to_string()),
        Value::Array(_) | Value::Table(_) => None,
    }
}

/// The option of `cmd` whose long name is `key` (dashes or underscores).
fn option<'a>(cmd: &'a Command, key: &str) -> Option<&'a clap::Arg> {
    let key = key.replace('_', "-");
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(key.as_str()) && !a.is_positional())
}

/// The command-line words that give `arg` the value `v` (from `file`, key `key`).
fn words(arg: &clap::Arg, key: &str, v: &Value, file: &str) -> Result<Vec<String>, BadInput> {
    let long = arg.get_long().unwrap_or(key);
    let bad = |what: &str| BadInput(format!("--config {file}: {key}: {what}"));
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => match v {
            Value::Boolean(true) => Ok(vec![format!("--{long}")]),
            Value::Boolean(false) => Ok(Vec::new()),
            _ => Err(bad("expected true or false")),
        },
        ArgAction::Count => match v {
            Value::Integer(n) if (0..=8).contains(n) => {
                Ok((0..*n).map(|_| format!("--{long}")).collect())
            }
            _ => Err(bad("expected a small whole number")),
        },
        ArgAction::Append => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                one => vec![one],
            };
            items
                .into_iter()
                .map(|i| {
                    scalar(i)
                        .map(|s| format!("--{long}={s}"))
                        .ok_or_else(|| bad("expected a value or a list of values"))
                })
                .collect()
        }
        _ => scalar(v)
            .map(|s| vec![format!("--{long}={s}")])
            .ok_or_else(|| bad("expected a single value")),
    }
}

/// The command line with the config file's values added for every option it does not give.
/// Without `--config`, the command line unchanged.
pub(crate) fn apply(argv: Vec<OsString>) -> Result<Vec<OsString>, BadInput> {
    apply_noting(argv).map(|(argv, _)| argv)
}

/// [`apply`], also returning the long names of the options the file supplied.
fn apply_noting(argv: Vec<OsString>) -> Result<(Vec<OsString>, Vec<String>), BadInput> {
    let Some(path) = config_path(&argv) else {
        return Ok((argv, Vec::new()));
    };
    let path = Path::new(&path);
    let table = load(path)?;
    let file = path.display().to_string();
    let root = Cli::command();
    // First pass: which command, and which options the command line gives itself.
    let Ok(first) = root.clone().ignore_errors(true).try_get_matches_from(&argv) else {
        // --help, --version: nothing to add.
        return Ok((argv, Vec::new()));
    };
    let Some((name, given)) = first.subcommand() else {
        return Ok((argv, Vec::new()));
    };
    check_keys(&root, &table, &file)?;
    if name == "config" {
        // `dhtkit config COMMAND ARGS`: the values go to the command named.
        return Ok((argv, Vec::new()));
    }
    let cmd = root
        .find_subcommand(name)
        .expect("clap matched this subcommand");
    let mut extra = Vec::new();
    let mut supplied = Vec::new();
    let command_table = table.get(name).and_then(Value::as_table);
    let mut keys: Vec<(&String, &Value)> = Vec::new();
    // The command's table first: it wins over the top level.
    if let Some(t) = command_table {
        keys.extend(t.iter());
    }
    for (k, v) in &table {
        let shadowed = command_table.is_some_and(|t| {
            t.keys()
                .any(|tk| tk.replace('_', "-") == k.replace('_', "-"))
        });
        if !v.is_table() && !shadowed {
            keys.push((k, v));
        }
    }
    for (key, v) in keys {
        let Some(arg) = option(cmd, key) else {
            continue; // a top-level key for other commands
        };
        if arg.get_id() == "config" {
            continue;
        }
        if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue; // the command line wins
        }
        extra.extend(words(arg, key, v, &file)?);
        supplied.extend(arg.get_long().map(str::to_string));
    }
    let mut out = argv;
    // Before a `--`, if there is one, so that they stay options.
    let at = out.iter().position(|a| a == "--").unwrap_or(out.len());
    out.splice(at..at, extra.into_iter().map(OsString::from));
    Ok((out, supplied))
}

/// Every key names an option of some command; every table names a command.
fn check_keys(root: &Command, table: &toml::Table, file: &str) -> Result<(), BadInput> {
    for (k, v) in table {
        match v {
            Value::Table(t) => {
                let Some(cmd) = root.find_subcommand(k).filter(|c| c.get_name() != "config") else {
                    return Err(BadInput(format!(
                        "--config {file}: [{k}] is not a dhtkit command"
                    )));
                };
                for key in t.keys() {
                    if option(cmd, key).is_none() {
                        return Err(BadInput(format!(
                            "--config {file}: [{k}] {key}: `dhtkit {k}` has no option --{}",
                            key.replace('_', "-")
                        )));
                    }
                }
            }
            _ => {
                let known = root.get_subcommands().any(|c| option(c, k).is_some());
                if !known {
                    return Err(BadInput(format!(
                        "--config {file}: {k}: no dhtkit command has an option --{}",
                        k.replace('_', "-")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// A value as TOML: numbers and booleans bare, the rest quoted.
fn toml_value(s: &str) -> Value {
    if let Ok(i) = s.parse::<i64>() {
        return Value::Integer(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && s.contains('.') {
            return Value::Float(f);
        }
    }
    match s {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => Value::String(s.to_string()),
    }
}

/// One command's effective options as a TOML table, with where each value came from.
fn describe(cmd: &Command, m: &ArgMatches, from_file: &[String], out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "[{}]", cmd.get_name());
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_positional() || matches!(long, "help" | "version" | "config" | "verbose") {
            continue;
        }
        let id = arg.get_id().as_str();
        let source = match m.value_source(id) {
            Some(ValueSource::CommandLine) if from_file.iter().any(|f| f == long) => "config file",
            Some(ValueSource::CommandLine) => "command line",
            Some(ValueSource::DefaultValue) => "default",
            Some(ValueSource::EnvVariable) => "environment",
            _ => "unset",
        };
        let raw: Vec<String> = m
            .get_raw(id)
            .map(|vs| vs.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let value = match arg.get_action() {
            ArgAction::SetTrue => Some(Value::Boolean(m.get_flag(id))),
            ArgAction::Append => Some(Value::Array(raw.iter().map(|s| toml_value(s)).collect())),
            _ => raw.first().map(|s| toml_value(s)),
        };
        match value {
            Some(v) => {
                let _ = writeln!(out, "{long} = {v}  # {source}");
            }
            None => {
                let _ = writeln!(out, "# {long} = (unset)");
            }
        }
    }
}

/// `dhtkit config [COMMAND [ARGS...]]`: the effective options of COMMAND (given ARGS and the
/// config file), or of every command.
pub(crate) fn print(config: Option<&Path>, command: &[String]) -> Result<(), BadInput> {
    let root = Cli::command();
    let names: Vec<String> = match command.first() {
        Some(n) => {
            if root
                .find_subcommand(n)
                .is_none_or(|c| c.get_name() == "config")
            {
                return Err(BadInput(format!("{n:?} is not a dhtkit command")));
            }
            vec![n.clone()]
        }
        None => root
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| !["config", "help", "completions", "manpage"].contains(&n.as_str()))
            .collect(),
    };
    let mut out = String::new();
    if let Some(p) = config {
        out.push_str(&format!("# config file: {}\n", p.display()));
    }
    for name in names {
        let mut argv: Vec<OsString> = vec!["dhtkit".into()];
        if let Some(p) = config {
            argv.push("--config".into());
            argv.push(p.as_os_str().to_owned());
        }
        argv.push(name.clone().into());
        if command.first() == Some(&name) {
            argv.extend(command[1..].iter().map(OsString::from));
        }
        let (argv, from_file) = apply_noting(argv)?;
        let m = root
            .clone()
            .ignore_errors(true)
            .try_get_matches_from(&argv)
            .map_err(|e| BadInput(e.to_string()))?;
        let (_, sub) = m.subcommand().expect("a subcommand was given");
        let cmd = root.find_subcommand(&name).expect("checked above");
        out.push('\n');
        describe(cmd, sub, &from_file, &mut out);
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn with_file(text: &str, args: &[&str]) -> Result<Vec<String>, BadInput> {
        let dir = std::env::temp_dir().join(format!("dhtkit-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(format!(
            "{}.toml",
            args.join("_").replace(['/', ':', '.'], "-")
        ));
        std::fs::write(&f, text).unwrap();
        let mut a = vec!["dhtkit", "--config", f.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = apply(argv(&a));
        let _ = std::fs::remove_file(&f);
        out.map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn the_file_fills_in_and_the_command_line_wins() {
        let text = "db = \"top.sqlite\"\n[node]\nbind = \"127.0.0.1:7000\"\nbootstrap = [\"a:1\", \"b:2\"]\nread-only = true\nsave_interval = 60\n";
        let a = with_file(text, &["node", "--bind", "127.0.0.9:1"]).unwrap();
        assert!(!a.iter().any(|w| w == "--bind=127.0.0.1:7000"), "{a:?}");
        for w in [
            "--bootstrap=a:1",
            "--bootstrap=b:2",
            "--read-only",
            "--save-interval=60",
        ] {
            assert!(a.iter().any(|x| x == w), "{w} missing from {a:?}");
        }
        // `db` is not an option of `node`: it is left for the commands that have it.
        assert!(!a.iter().any(|w| w.starts_with("--db")));
        let s = with_file(text, &["search", "x"]).unwrap();
        assert!(s.iter().any(|w| w == "--db=top.sqlite"), "{s:?}");
    }

    #[test]
    fn a_command_table_wins_over_the_top_level() {
        let text = "db = \"top.sqlite\"\n[web]\ndb = \"web.sqlite\"\n";
        let a = with_file(text, &["web"]).unwrap();
        assert!(a.iter().any(|w| w == "--db=web.sqlite"), "{a:?}");
        assert!(!a.iter().any(|w| w == "--db=top.sqlite"), "{a:?}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_errors() {
        assert!(with_file("[node]\nbindd = \"x\"\n", &["node"]).is_err());
        assert!(with_file("[nod]\nbind = \"x\"\n", &["node"]).is_err());
        assert!(with_file("nonsense = 1\n", &["node"]).is_err());
        assert!(with_file("[node]\nread-only = \"yes\"\n", &["node"]).is_err());
        assert!(with_file("[node]\nmax-nodes = [1, 2]\n", &["node"]).is_err());
        assert!(with_file("[node\n", &["node"]).is_err());
    }
}
