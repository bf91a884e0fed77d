"""A runbook whose step leaves processes of every kind behind it: an os.fork child, a
multiprocessing worker, a subprocess child, and the threadsafe_class manager (made by
the runbook, in the server). LOG counts each step's runs; PIDS gets the step's processes."""

import multiprocessing
import os
import subprocess
import time

from trail import Step, threadsafe_class

LOG = os.environ["FORK_LOG"]
PIDS = os.environ["FORK_PIDS"]


@threadsafe_class
class Tally:
    def __init__(self):
        self.count = 0

    def add(self):
        self.count += 1
        return self.count


context = Tally()


def first(trail_env, context):
    context.add()
    with open(LOG, "a") as log:
        log.write("first\n")
    return "done"


def forker(trail_env, context):
    with open(LOG, "a") as log:
        log.write("forker\n")
    pids = [os.getpid()]
    child = os.fork()
    if child == 0:
        time.sleep(600)
        os._exit(0)
    pids.append(child)
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(600,))
    worker.start()
    pids.append(worker.pid)
    pids.append(subprocess.Popen(["sleep", "600"]).pid)
    with open(PIDS + ".tmp", "w") as out:
        out.write(" ".join(map(str, pids)))
    os.rename(PIDS + ".tmp", PIDS)
    time.sleep(600)


trail = [(Step(first), Step(forker))]
