-- Each Harvest user with the Zoho CRM user of the same email, if any (their CRM role and
-- profile): who is who across time tracking and the CRM, e.g. to pick a record's owner.
with crm_users as (
    select
        lower(email) as email, id, status, role__name, profile__name,
        row_number() over (
            partition by lower(email) order by status = 'active' desc, "Modified_Time" desc nulls last, id
        ) as preference
    from {{ source('zoho', 'users') }}
    where email is not null
)

select
    users.id as harvest_user_id,
    trim(concat_ws(' ', users.first_name, users.last_name)) as name,
    lower(users.email) as email,
    users.is_active,
    users.is_contractor,
    users.weekly_capacity / 3600.0 as weekly_capacity_hours,
    crm_users.id as zoho_user_id,
    crm_users.status as zoho_status,
    crm_users.role__name as zoho_role,
    crm_users.profile__name as zoho_profile
from {{ source('harvest', 'users') }} as users
left join crm_users on crm_users.email = lower(users.email) and crm_users.preference = 1
