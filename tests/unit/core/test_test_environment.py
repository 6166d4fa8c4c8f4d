"""The test environment itself: no test may reach for cloud instance metadata."""

import os

from botocore.utils import InstanceMetadataFetcher


def test_instance_metadata_is_disabled_for_every_test() -> None:
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    # botocore's instance-metadata client reads the variable and never opens a connection.
    fetcher = InstanceMetadataFetcher(timeout=0.01, num_attempts=1)
    assert fetcher._disabled is True
    assert fetcher.retrieve_iam_role_credentials() == {}
