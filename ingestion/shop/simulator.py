"""The demo shop's operational database: a SQLite file that is generated and advanced in simulated time.

Everything is deterministic for a seed: the random generator is re-seeded from ``(seed, day)`` on every
step, so two shops built with the same seed and advanced by the same days hold identical rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

EPOCH = datetime(2026, 1, 1)
"""Day 0 of the simulation: fixed so that the data does not depend on the wall clock."""

HISTORY_DAYS = 60
"""Days of history written by :func:`create_shop`."""

TABLES = ("customers", "products", "orders", "order_items", "payments")
"""The operational tables that ingestion reads (the simulator's own state table is not one of them)."""

CHANNELS = ("google", "meta", "tiktok", "newsletter", "organic")
CATEGORIES = ("apparel", "footwear", "accessories", "outdoor", "home")
COUNTRIES = ("DE", "FR", "NL", "US", "GB", "ES", "IT", "SE")
PAYMENT_METHODS = ("card", "paypal", "bank_transfer", "gift_card")

_SCHEMA = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, first_name TEXT NOT NULL, last_name TEXT NOT NULL, email TEXT,
    country TEXT NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE products (
    id INTEGER PRIMARY KEY, sku TEXT NOT NULL, name TEXT NOT NULL, category TEXT NOT NULL,
    price NUMERIC NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, status TEXT NOT NULL, utm_source TEXT,
    ordered_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL, unit_price NUMERIC NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE payments (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, method TEXT NOT NULL, amount NUMERIC,
    status TEXT NOT NULL, paid_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE _headwater_sim (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX orders_status ON orders (status);
CREATE INDEX order_items_order ON order_items (order_id);
CREATE INDEX payments_order ON payments (order_id);
"""

_FIRST = ("Ada", "Ben", "Chloe", "Dario", "Elif", "Finn", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Luca")
_LAST = ("Meyer", "Dubois", "Jansen", "Smith", "Rossi", "Garcia", "Berg", "Novak", "Kowalski", "Silva")


@dataclass(frozen=True)
class ShopState:
    """Where a simulated shop stands: its seed, scale and current simulated day."""

    seed: int
    scale: float
    day: int

    @property
    def now(self) -> datetime:
        """The simulated wall clock: the end of the current day."""
        return EPOCH + timedelta(days=self.day, hours=23, minutes=59)

    @property
    def orders_per_day(self) -> int:
        return max(1, int(round(85 * self.scale)))


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _rng(state: ShopState, salt: int) -> np.random.Generator:
    return np.random.default_rng([state.seed, state.day, salt])


def _times(rng: np.random.Generator, day: int, n: int) -> list[str]:
    """``n`` sorted timestamps spread over simulated ``day``."""
    seconds = np.sort(rng.integers(0, 86_400, size=n))
    start = EPOCH + timedelta(days=day)
    return [_ts(start + timedelta(seconds=int(s))) for s in seconds]


def read_state(db_path: Path) -> ShopState:
    """The state of the shop at ``db_path``.

    Raises:
        FileNotFoundError: no shop there (run ``headwater demo`` first).
    """
    if not db_path.exists():
        raise FileNotFoundError(f"{db_path}: no demo shop database here; run `headwater demo` to create it")
    with sqlite3.connect(db_path) as conn:
        values = dict(conn.execute("SELECT key, value FROM _headwater_sim").fetchall())
    return ShopState(seed=int(values["seed"]), scale=float(values["scale"]), day=int(values["day"]))


def _write_state(conn: sqlite3.Connection, state: ShopState) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO _headwater_sim VALUES (?, ?)",
        [("seed", str(state.seed)), ("scale", str(state.scale)), ("day", str(state.day))],
    )


def _next_id(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])  # noqa: S608


def create_shop(db_path: Path, *, seed: int = 42, scale: float = 1.0) -> ShopState:
    """Create the shop database at ``db_path`` with :data:`HISTORY_DAYS` days of history.

    ``scale`` multiplies customers and orders: 1.0 gives about 5,000 orders and 12,500 order items;
    80 gives about 1M order items.

    Raises:
        FileExistsError: a database is already there (delete it or use ``advance_shop``).
    """
    if db_path.exists():
        raise FileExistsError(f"{db_path}: a demo shop already exists; pass --reset to recreate it")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    state = ShopState(seed=seed, scale=scale, day=0)
    with sqlite3.connect(db_path) as conn:
        conn.executescript(_SCHEMA)
        _insert_products(conn, state)
        _insert_customers(conn, state, count=max(10, int(1_000 * scale)), day=0)
        for day in range(HISTORY_DAYS):
            _simulate_day(conn, ShopState(seed, scale, day))
        final = ShopState(seed, scale, HISTORY_DAYS - 1)
        _write_state(conn, final)
    return final


def advance_shop(db_path: Path, *, days: int = 1) -> ShopState:
    """Move the shop forward by ``days``: new customers and orders, status updates, late payments."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    state = read_state(db_path)
    with sqlite3.connect(db_path) as conn:
        for day in range(state.day + 1, state.day + days + 1):
            step = ShopState(state.seed, state.scale, day)
            _insert_customers(conn, step, count=max(1, int(12 * state.scale)), day=day)
            _update_customers(conn, step)
            _simulate_day(conn, step)
        state = ShopState(state.seed, state.scale, state.day + days)
        _write_state(conn, state)
    return state


def _insert_products(conn: sqlite3.Connection, state: ShopState) -> None:
    rng = _rng(state, 1)
    n = 60
    created = _ts(EPOCH)
    rows = [
        (
            i + 1,
            f"SKU-{i + 1:05d}",
            f"{CATEGORIES[i % len(CATEGORIES)].title()} item {i + 1}",
            CATEGORIES[i % len(CATEGORIES)],
            round(float(rng.uniform(5, 250)), 2),
            created,
            created,
        )
        for i in range(n)
    ]
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _insert_customers(conn: sqlite3.Connection, state: ShopState, *, count: int, day: int) -> None:
    rng = _rng(state, 2)
    first_id = _next_id(conn, "customers")
    times = _times(rng, day, count)
    firsts = rng.integers(0, len(_FIRST), size=count)
    lasts = rng.integers(0, len(_LAST), size=count)
    countries = rng.integers(0, len(COUNTRIES), size=count)
    dirty = rng.random(count)
    rows = []
    for i in range(count):
        cid = first_id + i
        first, last = _FIRST[firsts[i]], _LAST[lasts[i]]
        email: str | None = f"{first}.{last}{cid}@example.com".lower()
        if dirty[i] < 0.004:
            email = None  # deliberately dirty: a missing email
        elif dirty[i] < 0.008:
            email = f"  {first.upper()}.{last.upper()}{cid}@EXAMPLE.COM "  # deliberately dirty: case, spaces
        rows.append((cid, first, last, email, COUNTRIES[countries[i]], times[i], times[i]))
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _update_customers(conn: sqlite3.Connection, state: ShopState) -> None:
    """Some customers move country: the change the customers snapshot (SCD2) records."""
    rng = _rng(state, 3)
    max_id = _next_id(conn, "customers") - 1
    picks = sorted({int(x) for x in rng.integers(1, max_id + 1, size=max(1, int(5 * state.scale)))})
    stamp = _ts(state.now - timedelta(hours=3))
    for cid in picks:
        country = COUNTRIES[int(rng.integers(0, len(COUNTRIES)))]
        conn.execute("UPDATE customers SET country = ?, updated_at = ? WHERE id = ?", (country, stamp, cid))


def _simulate_day(conn: sqlite3.Connection, state: ShopState) -> None:
    _progress_orders(conn, state)
    _late_payments(conn, state)
    _new_orders(conn, state)


def _new_orders(conn: sqlite3.Connection, state: ShopState) -> None:
    rng = _rng(state, 4)
    n = int(rng.poisson(state.orders_per_day))
    if n == 0:
        return
    max_customer = _next_id(conn, "customers") - 1
    prices = dict(conn.execute("SELECT id, price FROM products").fetchall())
    order_id = _next_id(conn, "orders")
    item_id = _next_id(conn, "order_items")
    payment_id = _next_id(conn, "payments")
    times = _times(rng, state.day, n)
    customers = rng.integers(1, max_customer + 1, size=n)
    channels = rng.choice(len(CHANNELS), size=n, p=[0.3, 0.25, 0.1, 0.1, 0.25])
    item_counts = rng.integers(1, 5, size=n)
    dirty = rng.random(n)
    pays_now = rng.random(n) < 0.9  # the rest pay late: a late-arriving payment on a later day
    orders: list[tuple] = []
    items: list[tuple] = []
    payments: list[tuple] = []
    for i in range(n):
        oid = order_id + i
        status = "placed"
        customer = int(customers[i])
        if dirty[i] < 0.003:
            status = " Placed "  # deliberately dirty: case and whitespace from a legacy client
        elif dirty[i] < 0.005:
            customer = max_customer + 10_000 + oid  # deliberately dirty: unknown customer (orphan)
        utm = CHANNELS[channels[i]]
        orders.append((oid, customer, status, utm, times[i], times[i]))
        total = 0.0
        products = rng.choice(len(prices), size=int(item_counts[i]), replace=False) + 1
        for product in products:
            quantity = int(rng.integers(1, 4))
            price = float(prices[int(product)])
            items.append((item_id, oid, int(product), quantity, price, times[i]))
            item_id += 1
            total += quantity * price
        if pays_now[i]:
            method = PAYMENT_METHODS[int(rng.integers(0, len(PAYMENT_METHODS)))]
            total_rounded = round(total, 2)
            amount: float | None = total_rounded
            if dirty[i] > 0.997:
                amount = -total_rounded  # deliberately dirty: a refund booked as a negative payment
            elif dirty[i] > 0.9955:
                amount = None  # deliberately dirty: a legacy client recorded the payment without its amount
            payments.append((payment_id, oid, method, amount, "succeeded", times[i], times[i]))
            payment_id += 1
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?, ?)", items)
    conn.executemany("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?)", payments)


_TRANSITIONS = {"placed": ("shipped", 0.6), "shipped": ("completed", 0.5)}


def _progress_orders(conn: sqlite3.Connection, state: ShopState) -> None:
    """Orders move placed -> shipped -> completed; a few completed orders are returned."""
    rng = _rng(state, 5)
    stamp = _ts(state.now - timedelta(hours=6))
    for current, (target, probability) in _TRANSITIONS.items():
        ids = [row[0] for row in conn.execute("SELECT id FROM orders WHERE status = ? ORDER BY id", (current,))]
        moved = _pick(rng, ids, probability)
        conn.executemany(
            "UPDATE orders SET status = ?, updated_at = ? WHERE id = ?", ((target, stamp, i) for i in moved)
        )
    completed = [r[0] for r in conn.execute("SELECT id FROM orders WHERE status = 'completed' ORDER BY id")]
    returned = _pick(rng, completed, 0.004)
    conn.executemany(
        "UPDATE orders SET status = 'returned', updated_at = ? WHERE id = ?", ((stamp, i) for i in returned)
    )


def _late_payments(conn: sqlite3.Connection, state: ShopState) -> None:
    """Half of the unpaid orders from earlier days get their payment today."""
    rng = _rng(state, 6)
    unpaid = conn.execute(
        "SELECT o.id, SUM(i.quantity * i.unit_price) FROM orders o JOIN order_items i ON i.order_id = o.id "
        "WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id) GROUP BY o.id ORDER BY o.id"
    ).fetchall()
    paying = set(_pick(rng, [row[0] for row in unpaid], 0.5))
    payment_id = _next_id(conn, "payments")
    stamp = _ts(state.now - timedelta(hours=1))
    rows = []
    for oid, total in unpaid:
        if oid in paying:
            rows.append((payment_id, oid, "bank_transfer", round(float(total), 2), "succeeded", stamp, stamp))
            payment_id += 1
    conn.executemany("INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _pick(rng: np.random.Generator, ids: Iterable[int], probability: float) -> list[int]:
    ids = list(ids)
    if not ids:
        return []
    mask = rng.random(len(ids)) < probability
    return [i for i, keep in zip(ids, mask, strict=True) if keep]
