//! Options the analyzers take from the command line.

/// Options the analyzers need.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Report user names of cleartext logins.
    pub show_users: bool,
}
