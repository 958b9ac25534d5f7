//! Users, organizations, memberships with roles, and invitations.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    OidcSubject,
    Email,
    EmailVerified,
    TosAcceptedAt,
    CreatedAt,
    LastLoginAt,
    CurrentOrgId,
}

#[derive(DeriveIden)]
enum OrgMemberships {
    Table,
    OrgId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OrgInvitations {
    Table,
    Id,
    OrgId,
    Email,
    Role,
    InvitedBy,
    CreatedAt,
    AcceptedAt,
}

/// The roles a membership or invitation may carry.
const ROLES: [&str; 3] = ["owner", "admin", "member"];

fn role_column<T: IntoIden>(column: T) -> ColumnDef {
    let column = column.into_iden();
    text(column.clone())
        .check(Expr::col(column).is_in(ROLES))
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(text(Organizations::Id).primary_key())
                    .col(text(Organizations::Name))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(text(Users::Id).primary_key())
                    .col(text_uniq(Users::OidcSubject))
                    .col(text_null(Users::Email))
                    .col(boolean(Users::EmailVerified).default(false))
                    .col(timestamp_with_time_zone_null(Users::TosAcceptedAt))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                    .col(text_null(Users::CurrentOrgId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_users_current_org")
                            .from(Users::Table, Users::CurrentOrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrgMemberships::Table)
                    .col(text(OrgMemberships::OrgId))
                    .col(text(OrgMemberships::UserId))
                    .col(role_column(OrgMemberships::Role))
                    .col(timestamp_with_time_zone(OrgMemberships::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(OrgMemberships::OrgId)
                            .col(OrgMemberships::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_org_memberships_org")
                            .from(OrgMemberships::Table, OrgMemberships::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_org_memberships_user")
                            .from(OrgMemberships::Table, OrgMemberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_org_memberships_user")
                    .table(OrgMemberships::Table)
                    .col(OrgMemberships::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OrgInvitations::Table)
                    .col(text(OrgInvitations::Id).primary_key())
                    .col(text(OrgInvitations::OrgId))
                    .col(text(OrgInvitations::Email))
                    .col(role_column(OrgInvitations::Role))
                    .col(text_null(OrgInvitations::InvitedBy))
                    .col(timestamp_with_time_zone(OrgInvitations::CreatedAt))
                    .col(timestamp_with_time_zone_null(OrgInvitations::AcceptedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_org_invitations_org")
                            .from(OrgInvitations::Table, OrgInvitations::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_org_invitations_inviter")
                            .from(OrgInvitations::Table, OrgInvitations::InvitedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_org_invitations_org")
                    .table(OrgInvitations::Table)
                    .col(OrgInvitations::OrgId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OrgInvitations::Table.into_iden(),
            OrgMemberships::Table.into_iden(),
            Users::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
