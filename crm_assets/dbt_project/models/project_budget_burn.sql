-- Budget burn per project, as Harvest measures it: an hours budget (budget_by project, task or
-- person) burns the hours of budgeted time entries; a money budget (project_cost, task_fees)
-- burns their billable amount, plus the expenses when the budget includes them. A monthly
-- budget counts the current month only. Lifetime totals of the project's time come alongside.
with projects as (
    select *, coalesce(budget_is_monthly, false) as monthly from {{ source('harvest', 'projects') }}
),

entries as (
    select * from {{ source('harvest', 'time_entries') }}
),

totals as (
    select
        project__id as project_id,
        count(*) as entries,
        sum(hours) as hours,
        coalesce(sum(hours) filter (where billable), 0) as billable_hours,
        coalesce(sum(hours * billable_rate) filter (where billable), 0) as billable_amount,
        max(updated_at) as last_entry_at
    from entries
    group by project__id
),

budget_time as (
    select
        entries.project__id as project_id,
        sum(entries.hours) as hours,
        coalesce(sum(entries.hours * entries.billable_rate) filter (where entries.billable), 0) as fees
    from entries
    join projects on projects.id = entries.project__id
    where entries.budgeted
      and (not projects.monthly or entries.spent_date >= date_trunc('month', current_date))
    group by entries.project__id
),

budget_expenses as (
    select expenses.project__id as project_id, sum(expenses.total_cost) as amount
    from {{ source('harvest', 'expenses') }} as expenses
    join projects on projects.id = expenses.project__id
    where not projects.monthly or expenses.spent_date >= date_trunc('month', current_date)
    group by expenses.project__id
),

shaped as (
    select
        projects.id as project_id,
        projects.client__id as client_id,
        projects.name as project_name,
        projects.code as project_code,
        projects.is_active,
        projects.is_billable,
        projects.bill_by,
        projects.budget_by,
        projects.monthly as budget_is_monthly,
        case
            when projects.budget_by in ('project', 'task', 'person') then 'hours'
            when projects.budget_by in ('project_cost', 'task_fees') then 'money'
            else 'none'
        end as budget_unit,
        projects.budget as hours_budget,
        projects.cost_budget as money_budget,
        coalesce(budget_time.hours, 0) as budget_hours_spent,
        coalesce(budget_time.fees, 0)
            + case when projects.cost_budget_include_expenses then coalesce(budget_expenses.amount, 0) else 0 end
            as budget_money_spent,
        coalesce(totals.entries, 0) as entries,
        coalesce(totals.hours, 0) as hours,
        coalesce(totals.billable_hours, 0) as billable_hours,
        coalesce(totals.billable_amount, 0) as billable_amount,
        totals.last_entry_at
    from projects
    left join totals on totals.project_id = projects.id
    left join budget_time on budget_time.project_id = projects.id
    left join budget_expenses on budget_expenses.project_id = projects.id
),

burned as (
    select
        *,
        case budget_unit when 'hours' then hours_budget when 'money' then money_budget end as budget,
        case budget_unit when 'hours' then budget_hours_spent when 'money' then budget_money_spent end
            as budget_spent
    from shaped
)

select
    project_id, client_id, project_name, project_code, is_active, is_billable, bill_by, budget_by,
    budget_is_monthly, budget_unit, budget, budget_spent,
    budget - budget_spent as budget_remaining,
    100 * budget_spent / nullif(budget, 0) as budget_used_pct,
    coalesce(budget_spent > budget, false) as is_over_budget,
    entries, hours, billable_hours, billable_amount, last_entry_at
from burned
