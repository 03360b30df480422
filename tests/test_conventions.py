from sessionlens import conventions as c


def test_every_alias_maps_to_exactly_one_canonical_key():
    seen: dict[str, str] = {}
    for key, aliases in c.ALIASES.items():
        assert key not in seen, f"{key} is both canonical and an alias"
        for alias in aliases:
            assert alias not in c.ALIASES, f"alias {alias} is also canonical"
            assert seen.setdefault(alias, key) == key, f"{alias} maps to two keys"


def test_headers_are_lower_case_and_unique():
    total = sum(len(h) for h in c.HEADER_ATTRIBUTES.values())
    assert len(c.HEADER_TO_ATTRIBUTE) == total
    assert all(h == h.lower() for h in c.HEADER_TO_ATTRIBUTE)
    assert c.HEADER_TO_ATTRIBUTE["helicone-session-id"] == c.SESSION_ID
    assert c.HEADER_TO_ATTRIBUTE["x-run-id"] == c.RUN_ID


def test_property_headers_become_property_attributes():
    assert c.property_attribute("Helicone-Property-Tier") == "sessionlens.property.tier"
    assert c.property_attribute("X-Sessionlens-Property-App") == "sessionlens.property.app"
    assert c.property_attribute("Helicone-Property-") is None
    assert c.property_attribute("X-Session-ID") is None
