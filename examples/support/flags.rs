//! The examples' command lines: `--name value` or `--name=value`, and
//! `-h`/`--help`; with no dependency beyond std.

/// One flag and its value.
pub(crate) struct Flag {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl Flag {
    /// The value as a whole number from `low` to `high`.
    pub(crate) fn number(&self, low: u64, high: u64) -> Result<u64, String> {
        match self.value.parse::<u64>() {
            Ok(n) if (low..=high).contains(&n) => Ok(n),
            _ => Err(format!(
                "{} takes a whole number from {low} to {high}, not {:?}",
                self.name, self.value
            )),
        }
    }

    /// The error for a flag the example does not take.
    pub(crate) fn unknown(&self) -> String {
        format!("unknown option {:?}", self.name)
    }
}

/// Hands each flag of the command line to `set`, in order; `Ok(false)`
/// when help was asked for.
pub(crate) fn parse(mut set: impl FnMut(&Flag) -> Result<(), String>) -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(false);
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or(format!("{name} needs a value"))?;
        set(&Flag { name, value })?;
    }
    Ok(true)
}

/// The options, or the end of the process: the usage on `--help` (exit 0),
/// the message and the usage on a bad flag (exit 2).
pub(crate) fn or_exit<T>(parsed: Result<Option<T>, String>, usage: &str) -> T {
    match parsed {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{usage}");
            std::process::exit(0);
        }
        Err(message) => {
            eprintln!("{message}\n\n{usage}");
            std::process::exit(2);
        }
    }
}
