//! Contract tests (see `tests/`): schemas, examples, consumers and routing agree.
