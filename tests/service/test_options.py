"""ServiceOptions: today's defaults, frozen, and checked when made (not when started)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import MetaData

import servicewire
from servicewire import RetryPolicy, Service, ServiceOptions
from servicewire.pipeline import inbox
from servicewire.security.signing import KeyRing
from servicewire.service import Signatures

RING = KeyRing({"k1": b"0" * 32})


def test_defaults_are_those_of_a_bare_service() -> None:
    options = ServiceOptions()
    assert options.content_type == "application/json"
    assert options.codecs is None
    assert options.retry == RetryPolicy()
    assert (options.concurrency, options.prefetch) == (32, 64)
    assert options.relay is True and options.relay_poll_interval == 0.25
    assert options.create_tables is True
    assert options.inbox_retention == inbox.DEFAULT_RETENTION
    assert options.inbox_cleanup_every == 3600.0
    assert options.instance_id is None
    assert options.tables == () and options.middleware == ()
    assert options.journal is None and options.on_outcome is None
    assert options.signatures == Signatures(signer=None, verifier=None, required=False)

    service = Service("kitchen")
    assert service.options == options
    assert (service.concurrency, service.prefetch, service.retry) == (32, 64, RetryPolicy())
    assert service.authenticity.signer is None and not service.authenticity.required


def test_a_service_is_made_from_its_options() -> None:
    signatures = Signatures(signer=RING, verifier=RING, required=True)
    options = ServiceOptions(concurrency=4, instance_id="i-1", signatures=signatures)
    service = Service("kitchen", db="sqlite://", transport="memory://", options=options)
    assert service.concurrency == 4
    assert service.instance_reply_channel.endswith("i-1")
    assert service.authenticity.signer is RING and service.authenticity.required


def test_options_are_frozen_and_keep_no_caller_list() -> None:
    options = ServiceOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.concurrency = 1  # type: ignore[misc]
    tables = [MetaData()]
    with_tables = ServiceOptions(tables=tables)
    tables.append(MetaData())  # the caller's list changing later changes nothing
    assert isinstance(with_tables.tables, tuple) and len(with_tables.tables) == 1


def test_replace_makes_a_variant_and_checks_it_again() -> None:
    base = ServiceOptions(concurrency=8)
    assert dataclasses.replace(base, relay=False).concurrency == 8
    with pytest.raises(ValueError, match="concurrency"):
        dataclasses.replace(base, concurrency=0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("concurrency", 0, "concurrency must be an integer of at least 1, not 0"),
        ("concurrency", True, "concurrency must be an integer of at least 1, not True"),
        ("prefetch", -1, "prefetch must be an integer of at least 1, not -1"),
        ("relay_poll_interval", 0.0, "relay_poll_interval must be a number of seconds above 0"),
        ("inbox_cleanup_every", float("nan"), "inbox_cleanup_every must be a number of seconds"),
    ],
)
def test_out_of_range_values_are_refused_by_name(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceOptions(**{field: value})  # type: ignore[arg-type]


def test_the_inbox_must_outlast_the_retry_horizon() -> None:
    retry = RetryPolicy(delayed=3, backoff=60.0, max_backoff=3600.0)
    with pytest.raises(ValueError, match="must exceed the retry horizon"):
        ServiceOptions(retry=retry, inbox_retention=timedelta(minutes=5))
    assert ServiceOptions(retry=retry, inbox_retention=timedelta(days=1)).retry is retry


def test_required_signatures_need_a_verifier() -> None:
    with pytest.raises(ValueError, match="needs a verifier"):
        Signatures(signer=RING, required=True)


def test_old_keywords_are_gone_rather_than_silently_ignored() -> None:
    with pytest.raises(TypeError, match="concurrency"):
        Service("kitchen", concurrency=4)  # type: ignore[call-arg]


def test_options_are_public_at_the_top_and_the_top_stays_small() -> None:
    assert servicewire.ServiceOptions is ServiceOptions
    assert "ServiceOptions" in servicewire.__all__
    assert len(servicewire.__all__) <= 30
