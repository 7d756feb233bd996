"""The feed's subscription types: scopes, groups, and what the app describes."""

from app.catalogue import FEED_TYPES
from app.catalogue import GROUPS
from app.catalogue import PUBLIC_TYPES
from app.catalogue import find_feed_type
from app.events import DESCRIBERS
from app.simulator.messages import SAMPLE_TYPES


def test_every_type_the_feed_describes_is_in_the_catalogue():
    assert set(DESCRIBERS) == {t.type for t in FEED_TYPES}


def test_the_types_that_need_no_consent_are_public():
    expected = {
        "stream.online",
        "stream.offline",
        "channel.update",
        "channel.raid",
        "user.update",
    }
    assert set(PUBLIC_TYPES) == expected


def test_every_type_has_a_known_group_and_one_entry():
    names = [t.type for t in FEED_TYPES]
    assert {t.group for t in FEED_TYPES} <= set(GROUPS)
    assert len(names) == len(set(names))


def test_catalogue_versions_match_the_samples():
    mismatched = {
        name: version
        for name, version in SAMPLE_TYPES.items()
        if find_feed_type(name).version != version
    }
    assert mismatched == {}


def test_an_unknown_type_is_not_in_the_catalogue():
    assert find_feed_type("channel.nope") is None
