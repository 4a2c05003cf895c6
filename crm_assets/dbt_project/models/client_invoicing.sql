-- Invoiced, paid and outstanding amounts per client, one row per client (in the client's currency).
-- Drafts are not invoiced yet; a closed invoice's unpaid rest was written off, so it is not outstanding.
with invoices as (
    select * from {{ source('harvest', 'invoices') }} where state <> 'draft'
),

invoiced as (
    select
        client__id as client_id,
        count(*) as invoices,
        sum(amount) as invoiced_amount,
        coalesce(sum(due_amount) filter (where state = 'open'), 0) as outstanding_amount,
        coalesce(sum(due_amount) filter (where state = 'open' and due_date < current_date), 0) as overdue_amount,
        coalesce(sum(due_amount) filter (where state = 'closed'), 0) as written_off_amount,
        max(issue_date) as last_issue_date
    from invoices
    group by client__id
),

paid as (
    select
        invoices.client__id as client_id,
        sum(payments.amount) as paid_amount,
        max(payments.paid_date) as last_paid_date
    from {{ source('harvest', 'invoice_payments') }} as payments
    join invoices on invoices.id = payments.invoice_id
    group by invoices.client__id
)

select
    clients.id as client_id,
    clients.name as client_name,
    clients.currency,
    clients.is_active,
    coalesce(invoiced.invoices, 0) as invoices,
    coalesce(invoiced.invoiced_amount, 0) as invoiced_amount,
    coalesce(paid.paid_amount, 0) as paid_amount,
    coalesce(invoiced.outstanding_amount, 0) as outstanding_amount,
    coalesce(invoiced.overdue_amount, 0) as overdue_amount,
    coalesce(invoiced.written_off_amount, 0) as written_off_amount,
    invoiced.last_issue_date,
    paid.last_paid_date
from {{ source('harvest', 'clients') }} as clients
left join invoiced on invoiced.client_id = clients.id
left join paid on paid.client_id = clients.id
