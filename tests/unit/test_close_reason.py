"""A WebSocket close reason fits the frame that carries it."""

from gql.server.http import close_reason


def test_a_close_reason_is_cut_to_its_frame_at_a_characters_boundary():
    assert close_reason("Subscriber for 1 already exists") == "Subscriber for 1 already exists"
    cut = close_reason("é" * 100)  # two bytes each
    assert len(cut.encode("utf-8")) <= 123
    assert cut == "é" * 60 + "..."
    assert close_reason("x" * 123) == "x" * 123
    assert close_reason("\ud800") == "\\ud800"
