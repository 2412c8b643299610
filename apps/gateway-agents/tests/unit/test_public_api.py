"""What another package may use of the agents server: pinned, so a change is deliberate."""

import keel_agents_server


def test_the_public_names() -> None:
    assert sorted(keel_agents_server.__all__) == [
        "AgentsServer",
        "AgentsServerSettings",
        "build",
        "serving",
    ]
