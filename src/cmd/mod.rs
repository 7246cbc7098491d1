//! One module per subcommand.

pub(crate) mod publish;
pub(crate) mod serve;
pub(crate) mod sub;
