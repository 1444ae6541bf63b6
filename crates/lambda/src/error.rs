pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the function could not start. Reported to Lambda as an init error; the message names
/// the variable to fix and never contains a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {var} {problem}")]
    Config { var: &'static str, problem: String },
    #[error("{0}")]
    Store(#[from] store::Error),
}

impl Error {
    pub(crate) fn config(var: &'static str, problem: impl Into<String>) -> Self {
        Error::Config { var, problem: problem.into() }
    }
}
