"""The control path between a trainer process and a vLLM worker's weight-transfer engine in
test_vllm.py, standing in for vLLM's RPC (HTTP routes or Ray, then collective_rpc to the workers),
which needs a running engine. The engine side does what vLLM's Worker does with each call
(vllm/v1/worker/gpu_worker.py): parse_init_info + init_transfer_engine, start_weight_update,
update_weights, finish_weight_update. Loopback only, one connection per call, authenticated.
"""
import threading
from multiprocessing.connection import Client, Listener


class EngineServer:
    """Serves `engine`'s calls to trainer processes; `calls` records (method, error or None)."""

    def __init__(self, engine, authkey: bytes):
        self.engine = engine
        self.calls = []
        self._listener = Listener(("127.0.0.1", 0), authkey=authkey)
        self.address = self._listener.address
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _call(self, method, arg):
        if method == "init_weight_transfer_engine":
            return self.engine.init_transfer_engine(self.engine.parse_init_info(arg))
        if method == "update_weights":
            return self.engine.update_weights(arg)
        return getattr(self.engine, method)()

    def _serve(self, conn):
        with conn:
            method, arg = conn.recv()
            try:
                self._call(method, arg)
                self.calls.append((method, None))
                conn.send(None)
            except BaseException as e:
                self.calls.append((method, f"{type(e).__name__}: {e}"))
                conn.send(f"{type(e).__name__}: {e}")

    def close(self):
        self._listener.close()


class EngineClient:
    """vLLM's VLLMWeightSyncClient protocol over EngineServer (trainer side)."""

    def __init__(self, address, authkey: bytes):
        self.address, self.authkey = tuple(address), authkey

    def _call(self, method, arg=None):
        with Client(self.address, authkey=self.authkey) as conn:
            conn.send((method, arg))
            error = conn.recv()
        if error is not None:
            raise RuntimeError(f"engine {method}: {error}")

    def init_weight_transfer_engine(self, init_info):
        self._call("init_weight_transfer_engine", init_info)

    def start_weight_update(self):
        self._call("start_weight_update")

    def update_weights(self, update_info):
        self._call("update_weights", update_info)

    def finish_weight_update(self, weight_version=None):
        self._call("finish_weight_update")
