"""Stream contents (issue 9, item 1): every receiver checks messages against the schema the experiment
implies and drops and counts what does not match; the wire format alone is not enough."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import bad_messages
import numpy as np
import pytest
import zmq

from srl_runtime.config.load import parse_experiment
from srl_runtime.name_records import keys
from srl_runtime.name_records.memory import MemoryNameRecords
from srl_runtime.streams import wire
from srl_runtime.streams.inference import make_inference_client, make_inference_server
from srl_runtime.streams.sample import make_sample_consumer, make_sample_producer

pytestmark = pytest.mark.unit
ROOT = "srl/_/contents"
ROWS = 8  # envsPerSlot below: CartPole, one agent per env
LENGTH = 17  # sampleSteps 16 + bootstrapSteps 1


def _experiment(**spec: Any) -> Any:
    return parse_experiment({
        "apiVersion": "srl.dev/v1alpha1", "kind": "RLExperiment", "metadata": {"name": "contents"},
        "spec": {"environment": {"id": "CartPole-v1"}, "actors": {"envsPerSlot": ROWS, "sampleSteps": 16},
                 "stop": {"trainSteps": 5}, **spec},
    })  # fmt: skip


def _schema(**spec: Any) -> Any:
    import gymnasium as gym

    from srl_runtime.streams.schema import stream_schema

    env = gym.make("CartPole-v1")
    return stream_schema(_experiment(**spec).spec, env.observation_space, env.action_space)


# ---- well-formed-but-wrong contents (shared with the integration tier)
BAD_REQUESTS = bad_messages.bad_requests(ROWS)
BAD_REPLIES = bad_messages.bad_replies(ROWS)
BAD_SAMPLES = bad_messages.bad_samples(LENGTH, ROWS)


def good_request(rows: int = ROWS) -> dict[str, np.ndarray]:
    return bad_messages.good_request(rows)


def good_reply(rows: int = ROWS) -> dict[str, np.ndarray]:
    return bad_messages.good_reply(rows)


def good_sample() -> dict[str, np.ndarray]:
    return bad_messages.good_sample(LENGTH, ROWS)


def _with(arrays: dict[str, np.ndarray], **changes: Any) -> dict[str, np.ndarray]:
    return {**arrays, **changes}


def test_good_contents_pass() -> None:
    schema = _schema()
    assert schema.check_request(good_request(3)) == 3
    schema.check_reply(good_reply(), ROWS)
    schema.check_sample({"actor": 0, "policy_version": 3}, good_sample())


@pytest.mark.parametrize("case,arrays", BAD_REQUESTS, ids=[c for c, _ in BAD_REQUESTS])
def test_bad_request_is_a_content_error(case: str, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(wire.MalformedMessage):
        _schema().check_request(arrays)


@pytest.mark.parametrize("case,arrays", BAD_REPLIES, ids=[c for c, _ in BAD_REPLIES])
def test_bad_reply_is_a_content_error(case: str, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(wire.MalformedMessage):
        _schema().check_reply(arrays, ROWS)


@pytest.mark.parametrize("case,arrays", BAD_SAMPLES, ids=[c for c, _ in BAD_SAMPLES])
def test_bad_sample_is_a_content_error(case: str, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(wire.MalformedMessage) as info:
        _schema().check_sample({}, arrays)
    finite_only = "nan" in case or "inf" in case
    assert (info.value.reason == "non_finite") == finite_only, info.value


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [1, 2, 7, 8, 9, 16, 33, 64, 65, 1000])
def test_all_finite_finds_every_nan_and_inf(dtype: type, size: int) -> None:
    from srl_runtime.streams.schema import all_finite

    big = np.finfo(dtype).max  # finite values at the edge of the range must not overflow the check
    a = np.where(np.arange(size) % 3, big, -big).astype(dtype)  # extremes of both signs
    assert all_finite(a) and all_finite(a.reshape(1, size, 1)) and all_finite(a[::2])
    for bad in (np.nan, np.inf, -np.inf):
        for at in {0, size // 2, size - 1}:  # first, middle, last (SIMD heads and tails)
            b = a.copy()
            b[at] = bad
            assert not all_finite(b), (bad, at)
            assert not all_finite(b.reshape(size, 1)), (bad, at)
    assert all_finite(np.zeros((0, 3), dtype)) and all_finite(np.zeros(2 * size + 70, dtype))


def test_checks_follow_each_schema_not_a_shared_cache() -> None:
    flat, rnn = _schema(), _schema(policy={"rnn": {"hiddenSize": 16}})
    request = _with(good_request(), rnn_state=np.zeros((ROWS, 16), np.float32))
    rnn.check_request(request)
    with pytest.raises(wire.MalformedMessage):
        flat.check_request(request)  # names: rnn_state is not flat's
    with pytest.raises(wire.MalformedMessage):
        rnn.check_request(_with(request, rnn_state=np.zeros((ROWS, 8), np.float32)))  # trailing shape
    with pytest.raises(wire.MalformedMessage):
        rnn.check_request(_with(request, rnn_state=np.zeros((ROWS - 1, 16), np.float32)))  # leading rows differ


def test_episode_flag_must_match_the_mode() -> None:
    with pytest.raises(wire.MalformedMessage):
        _schema().check_sample({"episode": True}, good_sample())
    episodes = _schema(actors={"envsPerSlot": ROWS, "sampleSteps": 16, "fullTrajectory": True, "maxEpisodeLength": 50})
    one = {k: v[:9, :1] for k, v in good_sample().items()}
    episodes.check_sample({"episode": True}, one)
    with pytest.raises(wire.MalformedMessage):
        episodes.check_sample({"episode": True}, {k: np.concatenate([v] * 4)[:, :1] for k, v in good_sample().items()})


def test_recurrent_policy_needs_rnn_state_in_requests_and_samples() -> None:
    schema = _schema(policy={"rnn": {"hiddenSize": 16}})
    with pytest.raises(wire.MalformedMessage):
        schema.check_request(good_request())
    schema.check_request(_with(good_request(), rnn_state=np.zeros((ROWS, 16), np.float32)))
    with pytest.raises(wire.MalformedMessage):
        schema.check_sample({}, good_sample())


# ---- the receivers: policy worker server, actor client, trainer consumer


@pytest.fixture
def records() -> Iterator[MemoryNameRecords]:
    nr = MemoryNameRecords()
    yield nr
    nr.close()


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_inference_server_drops_and_counts_bad_requests_and_serves_good_ones(records: MemoryNameRecords, kind: str) -> None:
    schema = _schema()
    server = make_inference_server(kind, records, ROOT, 0, check=schema.check_request)
    # A raw DEALER sends well-formed-but-wrong requests, as a buggy or hostile peer would.
    ctx = zmq.Context.instance()
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(records.get(keys.inference_stream(ROOT, 0)))
    client = make_inference_client(kind, records, ROOT, check=schema.check_reply)
    try:
        for i, (_, arrays) in enumerate(BAD_REQUESTS):
            dealer.send_multipart(wire.encode("infer_req", {"id": i}, arrays), copy=False)
        rid = client.post_request(good_request())
        served = []
        # The dealer's and the client's connections are not ordered with each other: poll until both
        # the good request is answered and every bad one has arrived (and been dropped).
        for _ in range(200):
            for req in server.poll_requests(512, 0.05):
                served.append(req)
                server.respond(req, good_reply(req.rows))
            if client.is_ready(rid) and server.dropped >= len(BAD_REQUESTS):
                break
        assert client.wait(rid, timeout=5)["action"].shape == (ROWS,)
        assert len(served) == 1, [r.arrays.keys() for r in served]
        assert server.dropped == len(BAD_REQUESTS), dict(server.drop_reasons)
        assert server.drop_reasons["non_finite"] == 2 and server.drop_reasons["shape"] >= 2, dict(server.drop_reasons)
    finally:
        dealer.close(0)
        client.close()
        server.close()


def test_actor_client_drops_bad_replies_and_keeps_waiting_for_a_good_one(records: MemoryNameRecords) -> None:
    schema = _schema()
    # A stand-in policy worker that answers every request with each bad reply first, then a good one.
    router = zmq.Context.instance().socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    records.add(keys.inference_stream(ROOT, 0), f"tcp://127.0.0.1:{port}")
    client = make_inference_client("zmq", records, ROOT, check=schema.check_reply)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not router.poll(50):
                continue
            ident, *frames = router.recv_multipart()
            _, meta, _ = wire.decode(frames)
            for _, bad in BAD_REPLIES:
                router.send_multipart([ident, *wire.encode("infer_rep", {"id": meta["id"]}, bad)], copy=False)
            router.send_multipart([ident, *wire.encode("infer_rep", {"id": meta["id"]}, good_reply())], copy=False)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        rid = client.post_request(good_request())
        reply = client.wait(rid, timeout=10)
        assert np.array_equal(reply["action"], good_reply()["action"]) and np.isfinite(reply["logp"]).all()
        assert client.dropped == len(BAD_REPLIES), dict(client.drop_reasons)
    finally:
        stop.set()
        thread.join(5)
        client.close()
        router.close(0)


@pytest.mark.parametrize("kind", ["zmq", "shm"])
def test_sample_consumer_drops_and_counts_bad_samples(records: MemoryNameRecords, kind: str) -> None:
    schema = _schema()
    consumer = make_sample_consumer(kind, records, ROOT, 0, check=schema.check_sample)
    producer = make_sample_producer(kind, records, ROOT, **({"ring_size": 4} if kind == "shm" else {}))
    got = []
    try:
        for _, arrays in BAD_SAMPLES:
            producer.post({"actor": 0}, arrays, timeout=10)
            assert consumer.consume(timeout=0.5) is None
        producer.post({"actor": 0}, good_sample(), timeout=10)
        for _ in range(40):
            msg = consumer.consume(timeout=0.25)
            if msg is not None:
                got.append(msg)
                break
        assert len(got) == 1 and got[0][1]["reward"].shape == (LENGTH, ROWS)
        assert consumer.dropped == len(BAD_SAMPLES), dict(consumer.drop_reasons)
        assert consumer.drop_reasons["non_finite"] == 4, dict(consumer.drop_reasons)
    finally:
        producer.close()
        consumer.close()
