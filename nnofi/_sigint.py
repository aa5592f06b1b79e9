"""Keep Ctrl-C a KeyboardInterrupt.

Loading libfabric (libfabric.so.1, 1.17) installs its own handlers for
SIGINT, SIGTERM and the fault signals, to remove shared-memory files
before the process dies. For SIGINT that replaced Python's handler at the
C level: Ctrl-C ended any program that imported nnofi with status 1,
skipping its except/finally blocks and atexit. Python's handler is put
back for SIGINT only; a KeyboardInterrupt unwinds normally and closing
the sockets removes the files. SIGTERM and the fault signals keep
libfabric's handlers (Python does not handle them by default)."""
import signal
import threading


def restore_keyboard_interrupt() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; nnofi is then imported late
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Python's (default_int_handler) or the program's own
        signal.signal(signal.SIGINT, handler)
