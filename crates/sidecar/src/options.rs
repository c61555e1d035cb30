//! The command line: a command, its words, and `--name value` options, each option
//! also read from the environment (`--database-url` from `SEQUIN_SF_DATABASE_URL`...).

use std::collections::HashMap;
use std::path::PathBuf;

pub const USAGE: &str = "\
usage:
  sequin-sf [run] --database-url URL (--key-file PATH | SEQUIN_SF_KEY=HEX)
            [--listen ADDRESS:PORT] [--tls-ca-file PATH | --tls-no-verify]
      installs sequin_sf's objects if the database has none, then runs its syncs
  sequin-sf install --database-url URL [--tls-...]
      installs sequin_sf's objects (plain SQL and PL/pgSQL) and exits
  sequin-sf key create PATH
      writes a new random key file (never replaces one)
  sequin-sf credential create NAME --kind KIND [--login-url URL] [--client-id ID]
            [--username USER] [--secrets-file JSON] --database-url URL (--key-file PATH | SEQUIN_SF_KEY)
      secrets from SEQUIN_SF_CLIENT_SECRET, SEQUIN_SF_REFRESH_TOKEN, SEQUIN_SF_PASSWORD,
      SEQUIN_SF_PRIVATE_KEY_FILE or the JSON file (never the command line)
  sequin-sf credential rotate-key --new-key-file PATH --database-url URL (--key-file PATH | SEQUIN_SF_KEY)
      seals every credential again under the new key
Options are also read from SEQUIN_SF_DATABASE_URL, SEQUIN_SF_KEY_FILE, SEQUIN_SF_LISTEN,
SEQUIN_SF_TLS_CA_FILE, SEQUIN_SF_TLS_NO_VERIFY=1.";

/// Options that take no value.
const SWITCHES: [&str; 1] = ["tls-no-verify"];

pub struct Args {
    pub words: Vec<String>,
    options: HashMap<String, String>,
}

pub fn usage(problem: &str) -> ! {
    eprintln!("sequin-sf: {problem}\n{USAGE}");
    std::process::exit(2)
}

impl Args {
    pub fn parse(argv: impl Iterator<Item = String>) -> Args {
        let mut words = Vec::new();
        let mut options = HashMap::new();
        let mut argv = argv.peekable();
        while let Some(arg) = argv.next() {
            match arg.strip_prefix("--") {
                Some(name) if SWITCHES.contains(&name) => {
                    options.insert(name.to_string(), "1".to_string());
                }
                Some(name) => {
                    let value = argv
                        .next()
                        .unwrap_or_else(|| usage(&format!("--{name} needs a value")));
                    if options.insert(name.to_string(), value).is_some() {
                        usage(&format!("--{name} is given twice"));
                    }
                }
                None => words.push(arg),
            }
        }
        Args { words, options }
    }

    /// The option, or its environment variable.
    pub fn get(&self, name: &str) -> Option<String> {
        self.options.get(name).cloned().or_else(|| {
            let env = format!("SEQUIN_SF_{}", name.to_uppercase().replace('-', "_"));
            std::env::var(env).ok().filter(|v| !v.is_empty())
        })
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }

    pub fn switch(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "1")
    }

    pub fn require(&self, name: &str) -> String {
        self.get(name)
            .unwrap_or_else(|| usage(&format!("--{name} is missing")))
    }

    /// Refuses options the command does not take: a misspelt one would be ignored.
    pub fn only(&self, allowed: &[&str]) {
        for name in self.options.keys() {
            if !allowed.contains(&name.as_str()) {
                usage(&format!("--{name} is not an option of this command"));
            }
        }
    }
}
