"""The handler suite's environment fixture, for the batch-scoring tests."""

from tests.handler.conftest import fresh_environment as fresh_environment
