"""BLAS threads: a context that holds BLAS to one thread."""

from __future__ import annotations


def one_blas_thread():
    """A context in which BLAS runs on one thread (threadpoolctl, a PyMC dependency).

    The MAP search and the chains' starts do many small vector operations (L-BFGS-B on
    about a hundred coordinates, a Hessian of that size), where a second BLAS thread
    gains nothing; when the cores are busy (another fit, another user), OpenBLAS's
    waiting threads made each L-BFGS-B step 50-70x slower (measured on 2 busy cores:
    the demo design's MAP search took 79 s, 7.5 s on one thread, same optimum). One
    thread also makes the search's arithmetic independent of the number of cores.

    Returns
    -------
    threadpoolctl.threadpool_limits
        A context manager; the previous thread counts come back on exit.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
