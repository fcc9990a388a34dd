"""Reading a day from CloudWatch Logs: GetLogEvents until the token repeats, cut to the day."""

from typing import Any

from shipper.jobs.exporters.cloudwatch import stream_events


class FakeLogs:
    def __init__(self, pages: list[list[int]]) -> None:
        self.pages = pages
        self.calls: list[dict[str, Any]] = []

    def get_log_events(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        n = int(params.get("nextToken", "f/0").split("/")[1])
        if n >= len(self.pages):
            return {"events": [], "nextForwardToken": params["nextToken"]}
        return {"events": [{"timestamp": t, "message": f"m{t}", "ingestionTime": t} for t in self.pages[n]],
                "nextForwardToken": f"f/{n + 1}"}


def test_pages_until_the_token_repeats_including_empty_pages() -> None:
    fake = FakeLogs([[1000, 1001], [], [1500], [2000]])  # an empty page in the middle is not the end
    got = [e["timestamp"] for e in stream_events(fake, "g", "s", 1000, 2000)]  # type: ignore[arg-type]
    assert got == [1000, 1001, 1500]  # endTime is exclusive here, whatever the server does
    assert fake.calls[0]["startFromHead"] is True and "nextToken" not in fake.calls[0]
    assert fake.calls[-1]["nextToken"] == "f/4"
