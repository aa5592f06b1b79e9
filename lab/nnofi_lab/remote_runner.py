"""Runs on a lab node, inside an execnet gateway: one task per channel.

The test side sends {"bundle": shipping.bundle(func), "args", "kwargs",
"ctl"}; this rebuilds the function (compiled under its own file name and
line numbers, so tracebacks point at the test's source), calls it, and
answers ("ok", result) or ("err", type, message, frames, text). A function
whose first parameter is `ctl` gets a control channel to the test:
ctl.send(obj) arrives as ("msg", obj), ctl.recv(timeout) takes what the
test sends. Only the standard library here: a node needs no nnofi_lab.
"""
import builtins
import importlib
import traceback

CTL_MAX_WAIT = 300.0  # a bounded wait even when the function asks for none


class _Missing:
    def __init__(self, name, module, error):
        self._what = f"{name} (module {module}) is not importable on this node: {error}"

    def __getattr__(self, attr):
        raise ImportError(self._what)

    def __call__(self, *a, **k):
        raise ImportError(self._what)


class Ctl:
    """The function's side of its control channel to the test."""

    _NO_DEFAULT = object()

    def __init__(self, channel):
        self._channel = channel

    def send(self, obj):
        self._channel.send(("msg", obj))

    def recv(self, timeout=None, default=_NO_DEFAULT):
        wait = CTL_MAX_WAIT if timeout is None else timeout
        try:
            return self._channel.receive(wait)
        except self._channel.TimeoutError:
            if default is not self._NO_DEFAULT:
                return default
            raise TimeoutError(f"nothing from the test within {wait}s") from None


def build(bundle):
    ns = {"__name__": "__lab__", "__builtins__": builtins}
    for name, target in bundle["imports"]:
        module, _, attr = target.partition(":")
        try:
            obj = importlib.import_module(module)
            ns[name] = getattr(obj, attr) if attr else obj
        except Exception as e:  # noqa: BLE001 - only an error if it is used
            ns[name] = _Missing(name, target, e)
    ns.update(bundle["consts"])
    for src, filename, first in bundle["units"]:
        exec(compile("\n" * (first - 1) + src, filename, "exec"), ns)
    return ns[bundle["name"]]


def serve(channel):
    req = channel.receive()
    try:
        func = build(req["bundle"])
        args = list(req["args"])
        if req["ctl"]:
            args.insert(0, Ctl(channel))
        result = func(*args, **req["kwargs"])
    except BaseException as e:  # noqa: BLE001 - everything goes back to the test
        frames = [(f.filename, f.lineno, f.name, f.line or "")
                  for f in traceback.extract_tb(e.__traceback__)[1:]]
        kind = type(e).__qualname__
        if type(e).__module__ not in ("builtins", "__lab__"):
            kind = f"{type(e).__module__}.{kind}"
        channel.send(("err", kind, str(e), frames, "".join(traceback.format_exception(e))))
        return
    try:
        channel.send(("ok", result))
    except Exception as e:  # noqa: BLE001 - an unserialisable result
        channel.send(("err", "nnofi_lab.ShippingError",
                      f"the result ({type(result).__name__}) cannot be sent back: {e}; return str, bytes, "
                      "numbers, None, bool, or lists/tuples/dicts/sets of them", [], ""))


if __name__ == "__channelexec__":
    serve(channel)  # noqa: F821 - execnet provides it
