"""Pure core: state, typed actions, reducers by slice, memoized selectors, the store.

No I/O, no asyncio, no threads beyond the store's lock.
"""

__all__: list[str] = []
