"""Use cases of customers: register, identify, get, erase (LGPD)."""

from __future__ import annotations

from chassis.errors import NotFound
from chassis.validation import validate_uuid
from orders.domain import cpf
from orders.domain.model import Customer
from orders.service_layer.unit_of_work import UowFactory


def register(uow_factory: UowFactory, raw_cpf: str, name: str, email: str) -> Customer:
    customer = Customer.register(cpf.normalize(raw_cpf), name, email)
    with uow_factory() as uow:
        uow.customers.add(customer)
        uow.commit()
    return customer


def identify(uow_factory: UowFactory, raw_cpf: str) -> Customer:
    digits = cpf.normalize(raw_cpf)
    with uow_factory().reading() as uow:
        customer = uow.customers.by_cpf(digits)
    if customer is None:
        raise NotFound("customer with CPF", "***" + digits[-2:])
    return customer


def get(uow_factory: UowFactory, customer_id: str) -> Customer:
    customer_id = validate_uuid(customer_id, "customer_id")
    with uow_factory().reading() as uow:
        customer = uow.customers.get(customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    return customer


def erase(uow_factory: UowFactory, customer_id: str) -> Customer:
    """Anonymise the customer and unlink their orders; erasing twice changes nothing."""
    customer_id = validate_uuid(customer_id, "customer_id")
    with uow_factory() as uow:
        customer = uow.customers.get(customer_id, for_update=True)
        if customer is None:
            raise NotFound("customer", customer_id)
        customer.erase()
        uow.customers.save(customer)
        uow.customers.detach_orders(customer_id)
        uow.commit()
    return customer
