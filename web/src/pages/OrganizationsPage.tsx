// SaaS mode: the organizations I belong to (switch, create, leave), the members of the
// current one (roles, remove, invite), and invitations waiting for me.

import { useState } from "react";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api } from "../api/endpoints";
import type { Organization, OrgMember, OrgRole } from "../api/types";
import { ErrorNotice, SuccessNotice } from "../components/ErrorNotice";

const ROLES: OrgRole[] = ["owner", "admin", "member"];

/** Everything an org change can affect is refetched: lists, and data scoped by org. */
function useRefreshAll() {
  const queryClient = useQueryClient();
  return () => queryClient.invalidateQueries();
}

function MemberRow({ org, member, canManage }: { org: Organization; member: OrgMember; canManage: boolean }) {
  const refresh = useRefreshAll();
  const label = member.email ?? member.user_id;
  const change = useMutation({
    mutationFn: (role: OrgRole) => api.changeRole(org.id, member.user_id, role),
    onSuccess: refresh,
  });
  const remove = useMutation({ mutationFn: () => api.removeMember(org.id, member.user_id), onSuccess: refresh });
  return (
    <li className="secret-row">
      <span>{label}</span>
      <div className="row-actions">
        {canManage ? (
          <select
              aria-label={`Role of ${label}`}
              value={member.role}
              disabled={change.isPending}
              onChange={(e) => change.mutate(e.target.value as OrgRole)}
            >
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
          </select>
        ) : (
          <span className="tag">{member.role}</span>
        )}
        {canManage && (
          <button type="button" onClick={() => remove.mutate()} aria-label={`Remove ${label}`} disabled={remove.isPending}>
            Remove
          </button>
        )}
      </div>
      <ErrorNotice error={change.error ?? remove.error} />
    </li>
  );
}

function Members({ org }: { org: Organization }) {
  const members = useQuery({ queryKey: ["org-members", org.id], queryFn: () => api.members(org.id) });
  const refresh = useRefreshAll();
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<OrgRole>("member");
  const invite = useMutation({
    mutationFn: () => api.invite(org.id, email.trim(), role),
    onSuccess: () => {
      setEmail("");
      refresh();
    },
  });
  const leave = useMutation({ mutationFn: () => api.leaveOrganization(org.id), onSuccess: refresh });
  const canManage = org.role === "owner" || org.role === "admin";
  return (
    <section className="card" aria-labelledby="members-title">
      <h2 id="members-title">Members of {org.name}</h2>
      {members.isPending && <p className="loading">Loading…</p>}
      <ErrorNotice error={members.error} onRetry={() => members.refetch()} />
      <ul className="secret-list" aria-label="Members">
        {(members.data?.members ?? []).map((m) => (
          <MemberRow key={m.user_id} org={org} member={m} canManage={canManage} />
        ))}
      </ul>
      {canManage && (
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            invite.mutate();
          }}
        >
          <label>
            Invite by e-mail
            <input type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <span aria-hidden="true">as</span>
          <select aria-label="Role for the invitation" value={role} onChange={(e) => setRole(e.target.value as OrgRole)}>
              {ROLES.filter((r) => r !== "owner" || org.role === "owner").map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
          </select>
          <button type="submit" className="primary" disabled={invite.isPending}>
            Invite
          </button>
        </form>
      )}
      {invite.isSuccess && <SuccessNotice>Invitation sent to {invite.data.email}.</SuccessNotice>}
      <ErrorNotice error={invite.error ?? leave.error} />
      <button type="button" className="danger" onClick={() => leave.mutate()} disabled={leave.isPending}>
        Leave {org.name}
      </button>
    </section>
  );
}

function MyInvitations() {
  const invitations = useQuery({ queryKey: ["my-invitations"], queryFn: api.myInvitations });
  const refresh = useRefreshAll();
  const accept = useMutation({
    mutationFn: (inv: { org_id: string; id: string }) => api.acceptInvitation(inv.org_id, inv.id),
    onSuccess: refresh,
  });
  const open = (invitations.data?.invitations ?? []).filter((i) => !i.accepted_at);
  if (open.length === 0) return null;
  return (
    <section className="card" aria-labelledby="invitations-title">
      <h2 id="invitations-title">Invitations for you</h2>
      <ul className="secret-list">
        {open.map((inv) => (
          <li key={inv.id} className="secret-row">
            <span>
              Join as {inv.role} (organization {inv.org_id})
            </span>
            <button type="button" className="primary" onClick={() => accept.mutate(inv)}>
              Accept
            </button>
          </li>
        ))}
      </ul>
      <ErrorNotice error={accept.error} />
    </section>
  );
}

export function OrganizationsPage() {
  const orgs = useQuery({ queryKey: ["organizations"], queryFn: api.organizations });
  const refresh = useRefreshAll();
  const [name, setName] = useState("");
  const create = useMutation({
    mutationFn: () => api.createOrganization(name.trim()),
    onSuccess: () => {
      setName("");
      refresh();
    },
  });
  const switchTo = useMutation({ mutationFn: (id: string) => api.switchOrganization(id), onSuccess: refresh });
  const list = orgs.data?.organizations ?? [];
  const current = list.find((o) => o.is_current);
  return (
    <div className="page narrow">
      <h1>Organizations</h1>
      <MyInvitations />
      <section className="card" aria-labelledby="orgs-title">
        <h2 id="orgs-title">Your organizations</h2>
        {orgs.isPending && <p className="loading">Loading…</p>}
        <ErrorNotice error={orgs.error ?? switchTo.error} onRetry={() => orgs.refetch()} />
        <ul className="secret-list" aria-label="Organizations">
          {list.map((o) => (
            <li key={o.id} className="secret-row">
              <span>
                <strong>{o.name}</strong> <span className="tag">{o.role}</span>
                {o.is_current && <span className="tag tag-ok"> current</span>}
              </span>
              {!o.is_current && (
                <button type="button" onClick={() => switchTo.mutate(o.id)} aria-label={`Switch to ${o.name}`}>
                  Switch
                </button>
              )}
            </li>
          ))}
        </ul>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            if (name.trim()) create.mutate();
          }}
        >
          <label>
            New organization
            <input value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <button type="submit" className="primary" disabled={create.isPending}>
            Create
          </button>
        </form>
        <ErrorNotice error={create.error} />
      </section>
      {current && <Members org={current} />}
    </div>
  );
}
